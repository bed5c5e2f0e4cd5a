import t from 'tap';
import { SegmentStore } from '../../agent/store/segment-store.js';
import { storeContract } from './fixtures/store-contract.js';

for (const sync of ['always', 'batch', 'none'] as const) {
  storeContract(t, `segment-store (sync ${sync})`, (dir) => SegmentStore.open({ dir, sync, batchWindowMs: 2 }));
}
storeContract(t, 'segment-store (small segments)', (dir) => SegmentStore.open({ dir, sync: 'always', segmentBytes: 4096, ackFlushMs: 5 }));
