// The command line beyond settings: `--help` (printed from the settings
// table in config.ts, so it cannot fall behind it) and `--version`.
import { ENV_ONLY, ENV_PREFIX, SETTINGS } from './config.js';
import { packageInfo } from './package-info.js';

/** What main.ts should do instead of starting: print help or the version. */
export function cliAction(argv: readonly string[]): 'help' | 'version' | null {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  if (argv.includes('--version') || argv.includes('-v')) return 'version';
  return null;
}

export function versionText(): string {
  return `swin-serve ${packageInfo().version}\n`;
}

export function helpText(): string {
  const lines = [
    `swin-serve ${packageInfo().version}: Swin image classification over HTTP and gRPC`,
    '',
    'Usage: swin-serve [--flag value | --flag=value ...]',
    '       swin-serve --help | --version',
    '',
    `Every flag has an environment variable, ${ENV_PREFIX}<NAME> or the plain <NAME> (older spelling);`,
    `a flag wins over ${ENV_PREFIX}<NAME>, which wins over <NAME>, which wins over the default.`,
    'docs/configuration.md explains each setting.',
    '',
    'Settings:',
  ];
  for (const s of SETTINGS) {
    const value =
      s.kind.type === 'enum'
        ? `<${s.kind.values.join('|')}>`
        : s.kind.type === 'int'
          ? '<n>'
          : s.kind.type === 'list'
            ? '<a,b,...>'
            : '<value>';
    const def = s.def === undefined || s.def === '' ? (s.unset ?? 'unset') : s.def;
    lines.push(`  --${s.flag} ${value}`);
    lines.push(`      ${s.help}`);
    lines.push(`      env ${ENV_PREFIX}${s.env} or ${s.env}; default: ${def}`);
  }
  lines.push('', 'Environment only (access: docs/security.md):');
  for (const e of ENV_ONLY) {
    lines.push(`  ${ENV_PREFIX}${e.env} or ${e.env}`);
    lines.push(`      ${e.help}; default: ${e.def}`);
  }
  return lines.join('\n') + '\n';
}
