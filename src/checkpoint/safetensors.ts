// The safetensors format in one import: reading (safetensors-read.ts), writing
// (safetensors-write.ts), sharded directories (safetensors-dir.ts, safetensors-shards.ts) and the dtypes.
export * from './dtypes.js';
export * from './safetensors-read.js';
export { writeSafetensors, type TensorToWrite } from './safetensors-write.js';
export { openSafetensorsDir } from './safetensors-dir.js';
export { DEFAULT_MAX_SHARD_SIZE, parseShardSize, writeSafetensorsShards } from './safetensors-shards.js';
