// The layer rules of docs/architecture.md, checked by `npm run lint` instead of hoped for.
// Type-only imports count: a type shared across a boundary is still a dependency on it.
/* global module */
const LOW = '^src/(nn|backend|checkpoint|config)/|^src/(errors|log|json-file)\\.ts$';
const ABOVE = '^src/(models|peft|train|data|watch|cli|bench|comm|eval|deploy)/|^coordinator/|^worker/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'dashboard-is-an-application',
      comment: 'the dashboard (src/watch/dashboard*) is an application: nothing below it imports it; of the other applications only the CLI and the coordinator (which feeds its worker table) do. The TensorBoard writer and the plots of src/watch/ sit lower: training writes through them',
      severity: 'error',
      from: { path: '^src/(?!watch/|cli/)|^worker/' },
      to: { path: '^src/watch/dashboard' },
    },
    {
      name: 'worker-not-coordinator',
      comment: 'worker/ and coordinator/ share only the protocol (src/comm/), never each other',
      severity: 'error',
      from: { path: '^worker/' },
      to: { path: '^coordinator/' },
    },
    {
      name: 'coordinator-not-worker',
      comment: 'worker/ and coordinator/ share only the protocol (src/comm/), never each other',
      severity: 'error',
      from: { path: '^coordinator/' },
      to: { path: '^worker/' },
    },
    {
      name: 'peft-through-nn',
      comment: 'PEFT sees models only through the neutral src/nn/ layer',
      severity: 'error',
      from: { path: '^src/peft/' },
      to: { path: '^src/models/' },
    },
    {
      name: 'models-without-peft',
      comment: 'a model family knows nothing of the PEFT library: adapters plug into the src/nn/ seam',
      severity: 'error',
      from: { path: '^src/models/' },
      to: { path: '^src/peft/' },
    },
    {
      name: 'models-peft-data-below-training',
      comment: 'models, PEFT and data sit under training, the protocol and the applications',
      severity: 'error',
      from: { path: '^src/(models|peft|data)/' },
      to: { path: '^src/(train|watch|comm|cli|bench|eval|deploy)/|^coordinator/|^worker/' },
    },
    {
      name: 'low-layers-import-nothing-above',
      comment: 'src/nn, backend, checkpoint, config, errors, log and json-file sit under everything else',
      severity: 'error',
      from: { path: LOW },
      to: { path: ABOVE },
    },
    {
      name: 'watch-below-applications',
      comment: 'the TensorBoard writer and the plots of src/watch/ are fed by training and the coordinator: they import neither them nor the applications',
      severity: 'error',
      from: { path: '^src/watch/(tensorboard|plot)' },
      to: { path: '^src/(train|comm|cli|bench|eval|deploy)/|^coordinator/|^worker/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-test-from-src',
      comment: 'the library and the scripts never depend on the test suite',
      severity: 'error',
      from: { path: '^(src|scripts|bin|coordinator|worker)/' },
      to: { path: '^test/' },
    },
    {
      name: 'resolvable',
      comment: 'every relative import must lead to a file (else the rules above see nothing)',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, pathNot: '^node:' },
    },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^node_modules/' },
    // With tsConfig, `./x.js` specifiers resolve to the `./x.ts` beside them (NodeNext style).
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js', '.cjs', '.json'], exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
