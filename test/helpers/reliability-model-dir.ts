// A throwaway model folder for reliability tests: model.json (the fake model),
// self-test images and the reference logits the FakeBackend produces for
// them, so a healthy fake engine passes its self-test and a faulty one fails.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelConfig } from '../../src/models/model-config.js';
import { fakeLogits, uniformImages } from './fake-backend.js';
import { fakeModelConfig } from './fake-model.js';

export interface ModelDir {
  root: string;
  config: ModelConfig;
  imageBytes: number;
  remove(): void;
}

export function writeFakeModelDir(over: Partial<ModelConfig> & { size?: number } = {}): ModelDir {
  const root = mkdtempSync(join(tmpdir(), 'swin-rel-models-'));
  const config = fakeModelConfig(over);
  const dir = join(root, config.name);
  mkdirSync(dir);
  const size = config.architecture.img_size;
  const imageBytes = size * size * 3;
  const images = uniformImages([25, 100], imageBytes);
  const logits = fakeLogits(images, 2, imageBytes, config.architecture.num_classes);
  const rows = [Array.from(logits.subarray(0, 10)), Array.from(logits.subarray(10, 20))];
  writeFileSync(join(dir, 'model.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'selftest.u8'), images);
  writeFileSync(join(dir, 'selftest.json'), JSON.stringify(rows));
  return { root, config, imageBytes, remove: () => rmSync(root, { recursive: true, force: true }) };
}
