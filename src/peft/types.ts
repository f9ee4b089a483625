// The PEFT library's public types. The per-layer adapter interface itself lives next to the
// modules it plugs into (src/models/modules.ts), so models do not depend on the library.
export type { LinearAdapter, LinearSpec, NormSpec, AdaptableModel } from '../models/modules.js';
