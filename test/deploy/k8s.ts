// Offline checks of rendered Kubernetes objects: `kubectl kustomize`, the API schemas
// (kubernetes-models' validators) and unknown fields. The schemas accept unknown fields (the API
// server would drop them silently, so `contianers:` would just vanish), hence the extra walk: it
// checks every key against the property names of kubernetes-models' TypeScript interfaces, read
// with the TypeScript type checker.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import ts from 'typescript';
import YAML from 'yaml';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: unknown }; [k: string]: unknown };

/** The kinds deploy/ uses: model class (schema validation) and interface (field names). */
const KINDS: Record<string, { model: new (data: never) => { validate(): void }; module: string; iface: string }> = {
  'batch/v1 Job': { model: Job, module: 'kubernetes-models/batch/v1/Job', iface: 'IJob' },
  'networking.k8s.io/v1 NetworkPolicy': { model: NetworkPolicy, module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', iface: 'INetworkPolicy' },
  'v1 ConfigMap': { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', iface: 'IConfigMap' },
  'v1 PersistentVolumeClaim': { model: PersistentVolumeClaim, module: 'kubernetes-models/v1/PersistentVolumeClaim', iface: 'IPersistentVolumeClaim' },
  'v1 Pod': { model: Pod, module: 'kubernetes-models/v1/Pod', iface: 'IPod' },
  'v1 Secret': { model: Secret, module: 'kubernetes-models/v1/Secret', iface: 'ISecret' },
  'v1 Service': { model: Service, module: 'kubernetes-models/v1/Service', iface: 'IService' },
};

/** `kubectl kustomize DIR`, parsed; a missing kubectl is a clear failure, not a skip (docs/architecture.md#what-is-checked-where). */
export function kustomize(dir: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error('kubectl is not on PATH: the deploy tests render overlays with `kubectl kustomize` (install kubectl ≥ 1.27; docs/architecture.md#what-is-checked-where)');
  }
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject).filter((o) => o !== null);
}

function keyOf(o: K8sObject): string {
  return `${o.apiVersion} ${o.kind}`;
}

let checker: { check: ts.TypeChecker; types: Map<string, ts.Type> } | undefined;

/** One TypeScript program over a virtual file that declares a value of each interface. */
function typeChecker(): { check: ts.TypeChecker; types: Map<string, ts.Type> } {
  if (checker) return checker;
  const entries = Object.entries(KINDS);
  const file = path.join(process.cwd(), '__k8s_kinds__.ts');
  const text = entries.map(([, k], i) => `import type { ${k.iface} as T${i} } from '${k.module}';\nexport declare const v${i}: T${i};`).join('\n');
  const options: ts.CompilerOptions = { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, strict: true, noEmit: true, skipLibCheck: true, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) => (name === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const check = program.getTypeChecker();
  const source = program.getSourceFile(file)!;
  const types = new Map<string, ts.Type>();
  const symbols = check.getExportsOfModule(check.getSymbolAtLocation(source)!);
  entries.forEach(([key], i) => {
    const sym = symbols.find((s) => s.name === `v${i}`)!;
    const type = check.getTypeOfSymbol(sym);
    if (check.getPropertiesOfType(type).length === 0) throw new Error(`kubernetes-models: could not read the ${key} interface`);
    types.set(key, type);
  });
  checker = { check, types };
  return checker;
}

/** The object-shaped members of a (possibly optional, possibly union) type. */
function objectTypes(check: ts.TypeChecker, t: ts.Type): ts.Type[] {
  const nn = check.getNonNullableType(t);
  const members = nn.isUnion() ? nn.types : [nn];
  return members.filter((m) => (m.flags & ts.TypeFlags.Object) !== 0);
}

function walk(check: ts.TypeChecker, value: unknown, type: ts.Type, at: string, errors: string[]): void {
  if (typeof value !== 'object' || value === null) return;
  const candidates = objectTypes(check, type);
  if (Array.isArray(value)) {
    const arr = candidates.find((c) => check.isArrayType(c));
    const elem = arr ? check.getTypeArguments(arr as ts.TypeReference)[0] : undefined;
    if (elem) value.forEach((v, i) => walk(check, v, elem, `${at}[${i}]`, errors));
    return;
  }
  for (const [key, v] of Object.entries(value)) {
    const c = candidates.find((t) => t.getProperty(key) !== undefined);
    if (c) {
      walk(check, v, check.getTypeOfSymbol(c.getProperty(key)!), `${at}.${key}`, errors);
      continue;
    }
    const map = candidates.map((t) => t.getStringIndexType()).find((t) => t !== undefined);
    if (map) walk(check, v, map, `${at}.${key}`, errors);
    else if (candidates.length > 0) errors.push(`${at}.${key}: unknown field`);
  }
}

/** Schema errors and unknown fields of one object, as readable lines (empty: valid). */
export function k8sErrors(obj: K8sObject): string[] {
  const name = `${obj.kind}/${obj.metadata?.name ?? '?'}`;
  const kind = KINDS[keyOf(obj)];
  if (!kind) return [`${name}: ${keyOf(obj)} is not a kind deploy/ is expected to use`];
  const errors: string[] = [];
  // kustomize wraps long base64 values over lines; the API server's decoder skips the newlines.
  const data = obj.kind === 'Secret' ? (obj.data as Record<string, string> | undefined) : undefined;
  const unwrapped = data ? { ...obj, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.replace(/\n/g, '')])) } : obj;
  try {
    new kind.model(unwrapped as never).validate();
  } catch (err) {
    errors.push(`${name}: schema: ${(err as Error).message}`);
  }
  const { check, types } = typeChecker();
  const unknown: string[] = [];
  walk(check, obj, types.get(keyOf(obj))!, '', unknown);
  return [...errors, ...unknown.map((u) => `${name}: ${u.slice(1)}`)];
}

