import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realFiles } from '../../common/real-files.js';
import { filesContract } from './files-contract.js';

filesContract(t, 'real-files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-files-'));
  return { files: realFiles, dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
});
