// ESLint for the TypeScript (scripts/test.sh runs it; Prettier owns the layout).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // What .gitignore keeps out of the tree (virtual environments carry third-party JavaScript).
  {
    ignores: [
      '**/dist/',
      '**/node_modules/',
      '**/.venv/',
      '**/build/',
      'src/generated/',
      'coverage/',
      '.cache/',
      '.carry/',
      '.gl/',
      '.whl/',
      'tmp/',
      'third_party/',
      'bench/.out/',
      'bench/.images/',
      'bench/.tools/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        performance: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        FormData: 'readonly',
        Blob: 'readonly',
        Response: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        queueMicrotask: 'readonly',
        structuredClone: 'readonly',
        __dirname: 'readonly',
        require: 'readonly',
        module: 'writable',
      },
    },
    rules: {
      // `_`-prefixed names are deliberately unused (interface conformance, destructuring to drop a key).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Prettier owns line breaks (it breaks `sharp(...)\n[format]()` chains this rule reads as a mistake).
      'no-unexpected-multiline': 'off',
    },
  },
  {
    // Clients built at run time from .proto files (grpc-js loadPackageDefinition) have no static types.
    files: ['test/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // Harnesses initialise what a later event overwrites (the time a signal was sent).
      'no-useless-assignment': 'off',
    },
  },
);
