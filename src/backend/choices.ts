// The values of --backend / ONELORA_BACKEND / the config's `backend`, in `auto`'s order after
// 'auto' itself. A file of its own so that reading a config does not load tfjs.
export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = Exclude<BackendChoice, 'auto'>;
