// The run configuration's public face: parse and load (config.ts), presets (presets.ts), the
// config hash (hash.ts), and the schema's constants.
export * from './config.js';
export * from './presets.js';
export * from './hash.js';
