// What the committed overlays put on a cluster, read from `kubectl kustomize`: worker count, GPUs,
// micro and global batch agree with the run config; pods are non-root and locked down; the
// failure policies match the runtime's exit codes; the network policy covers exactly the ports.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { deriveAccumulation } from '../../src/train/batch.js';
import { OVERLAYS, ROOT } from './helpers.js';
import { k8sErrors, kustomize, type K8sObject } from './k8s.js';

interface Container {
  name: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  ports: { name: string; containerPort: number }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: { allowPrivilegeEscalation: boolean; readOnlyRootFilesystem: boolean; capabilities: { drop: string[] } };
  volumeMounts: { name: string; mountPath: string }[];
}
interface PodSpec {
  restartPolicy: string;
  subdomain?: string;
  securityContext: { runAsNonRoot: boolean; runAsUser: number; seccompProfile: { type: string } };
  containers: Container[];
  volumes: { name: string; configMap?: { name: string }; persistentVolumeClaim?: { claimName: string }; emptyDir?: object }[];
}
interface JobSpec {
  completionMode?: string;
  completions: number;
  parallelism: number;
  backoffLimitPerIndex?: number;
  maxFailedIndexes?: number;
  podFailurePolicy: { rules: { action: string; onExitCodes?: { values: number[] }; onPodConditions?: { type: string }[] }[] };
  template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
}
type Obj = K8sObject & { spec: never; data: Record<string, string> };

function find(objs: K8sObject[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && (x.metadata.name === name || x.metadata.name.startsWith(name + '-')));
  assert.ok(o, `${kind}/${name} in the overlay`);
  return o as Obj;
}
const job = (objs: K8sObject[], name: string): JobSpec => find(objs, 'Job', name).spec as JobSpec;
const envOf = (c: Container, name: string): string | undefined => c.env.find((e) => e.name === name)?.value;

void describe('the committed overlays', () => {
  for (const o of OVERLAYS) {
    const objs = kustomize(path.join(ROOT, o.dir));
    const coord = job(objs, 'onelora-coordinator');
    const workers = job(objs, 'onelora-workers');
    const cm = find(objs, 'ConfigMap', 'onelora-run-config');
    // The pods read /config/run.yaml with --workers N; parse it the same way.
    const cfg = parseConfig(YAML.parse(cm.data['run.yaml']!), { source: `${o.dir} ConfigMap`, baseDir: '/config', overrides: [`distributed.workers=${o.workers}`] });

    void it(`${o.dir}: every object passes the API schemas and has no unknown fields`, () => {
      assert.deepEqual(objs.flatMap(k8sErrors), []);
      assert.deepEqual(objs.map((x) => x.kind).sort(), ['ConfigMap', 'Job', 'Job', 'NetworkPolicy', 'NetworkPolicy', 'PersistentVolumeClaim', 'Service', 'Service']);
    });

    void it(`${o.dir}: worker count, GPUs, micro-batch and global batch agree with the run config`, () => {
      assert.equal(workers.completionMode, 'Indexed');
      assert.equal(workers.completions, o.workers);
      assert.equal(workers.parallelism, o.workers);
      assert.equal(cfg.distributed.workers, o.workers);
      assert.equal(envOf(coord.template.spec.containers[0]!, 'ONELORA_WORKERS'), String(o.workers));
      assert.deepEqual(coord.template.spec.containers[0]!.args.slice(0, 5), ['coordinator', '--config', '/config/run.yaml', '--workers', '$(ONELORA_WORKERS)']);
      assert.ok(coord.template.spec.containers[0]!.args.includes('--resume'));
      const res = workers.template.spec.containers[0]!.resources;
      assert.equal(res.limits['nvidia.com/gpu'], '1');
      assert.equal(res.requests['nvidia.com/gpu'], '1');
      assert.equal(coord.template.spec.containers[0]!.resources.limits['nvidia.com/gpu'], undefined, 'the coordinator needs no GPU');
      assert.equal(cfg.batch.micro, o.micro);
      assert.equal(cfg.batch.global, 128);
      assert.equal(o.workers * cfg.batch.micro * deriveAccumulation(cfg, o.workers), cfg.batch.global);
      assert.equal(workers.backoffLimitPerIndex, cfg.distributed.max_failures);
      assert.equal(workers.maxFailedIndexes, o.workers - cfg.distributed.min_workers);
      for (const p of [cfg.data.train, cfg.data.validation!]) assert.ok(p.startsWith('/data/'), `${p} on the data volume`);
    });

    void it(`${o.dir}: names, selectors and references line up`, () => {
      const headless = find(objs, 'Service', 'onelora-workers').spec as { clusterIP: string; selector: Record<string, string>; publishNotReadyAddresses: boolean };
      assert.equal(headless.clusterIP, 'None');
      assert.equal(workers.template.spec.subdomain, 'onelora-workers');
      const w = workers.template.spec.containers[0]!;
      assert.ok(w.args.join(' ').includes('--advertise onelora-workers-$(WORKER_INDEX).onelora-workers --zmq-port 29500'));
      assert.ok(w.args.join(' ').includes('--coordinator onelora-coordinator:29400'));
      assert.deepEqual(w.env.find((e) => e.name === 'WORKER_INDEX')?.valueFrom, { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } });
      const svc = find(objs, 'Service', 'onelora-coordinator').spec as { selector: Record<string, string>; ports: { port: number }[] };
      assert.deepEqual(svc.ports.map((p) => p.port), [29400, 9400]);
      for (const [sel, tpl] of [[headless.selector, workers.template], [svc.selector, coord.template]] as const) {
        for (const [k, v] of Object.entries(sel)) assert.equal(tpl.metadata.labels[k], v, `selector ${k}=${v}`);
      }
      for (const j of [coord, workers]) {
        const vols = j.template.spec.volumes;
        assert.equal(vols.find((v) => v.name === 'run-config')?.configMap?.name, cm.metadata.name, 'the Jobs mount the generated ConfigMap');
        assert.equal(vols.find((v) => v.name === 'data')?.persistentVolumeClaim?.claimName, 'onelora-data');
        const token = j.template.spec.containers[0]!.env.find((e) => e.name === 'ONELORA_JOB_TOKEN');
        assert.deepEqual(token?.valueFrom, { secretKeyRef: { name: 'onelora-job-token', key: 'token' } });
        assert.equal(j.template.spec.containers[0]!.env.some((e) => e.name === 'CUDA_VISIBLE_DEVICES'), false, 'the device plugin picks the GPU');
      }
      const pvc = find(objs, 'PersistentVolumeClaim', 'onelora-data').spec as { accessModes: string[] };
      assert.deepEqual(pvc.accessModes, ['ReadWriteMany']);
    });

    void it(`${o.dir}: pods run non-root on a read-only root with a writable /tmp, with requests and limits`, () => {
      for (const j of [coord, workers]) {
        const pod = j.template.spec;
        assert.equal(pod.securityContext.runAsNonRoot, true);
        assert.equal(pod.securityContext.runAsUser, 10001);
        assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
        assert.equal(pod.volumes.find((v) => v.name === 'tmp')?.emptyDir !== undefined, true);
        for (const c of pod.containers) {
          assert.equal(c.securityContext.readOnlyRootFilesystem, true);
          assert.equal(c.securityContext.allowPrivilegeEscalation, false);
          assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
          assert.equal(c.volumeMounts.find((m) => m.name === 'tmp')?.mountPath, '/tmp');
          assert.ok(c.resources.requests.memory && c.resources.limits.memory && c.resources.requests.cpu, `${c.name}: requests and limits`);
        }
      }
    });

    void it(`${o.dir}: a config error (exit 2) fails a Job at once; disruptions are not counted`, () => {
      for (const j of [coord, workers]) {
        assert.equal(j.template.spec.restartPolicy, 'Never');
        const [fail, ignore] = j.podFailurePolicy.rules;
        assert.equal(fail?.action, 'FailJob');
        assert.deepEqual(fail?.onExitCodes?.values, [2]);
        assert.equal(ignore?.action, 'Ignore');
        assert.equal(ignore?.onPodConditions?.[0]?.type, 'DisruptionTarget');
      }
    });

    void it(`${o.dir}: the network policies allow exactly the job's ports, DNS and metrics scraping`, () => {
      type Rule = { from?: { podSelector?: { matchLabels: Record<string, string> }; namespaceSelector?: { matchLabels: Record<string, string> } }[]; to?: Rule['from']; ports: { port: number; protocol: string }[] };
      const policy = (name: string) => find(objs, 'NetworkPolicy', name).spec as { policyTypes: string[]; ingress: Rule[]; egress: Rule[] };
      const peers = (r: Rule) => (r.from ?? r.to ?? []).map((p) => p.podSelector?.matchLabels['app.kubernetes.io/component'] ?? `ns:${Object.keys(p.namespaceSelector?.matchLabels ?? {}).join()}`);
      const summary = (rules: Rule[]) => rules.map((r) => `${peers(r).join('+') || 'any'} ${r.ports.map((p) => `${p.protocol}/${p.port}`).join(',')}`);
      const c = policy('onelora-coordinator');
      const w = policy('onelora-workers');
      for (const p of [c, w]) assert.deepEqual(p.policyTypes, ['Ingress', 'Egress']);
      assert.deepEqual(summary(c.ingress), ['worker TCP/29400', 'ns:onelora.io/metrics-scraper TCP/9400']);
      assert.deepEqual(summary(c.egress), ['worker TCP/29500', 'any UDP/53,TCP/53']);
      assert.deepEqual(summary(w.ingress), ['worker+coordinator TCP/29500', 'ns:onelora.io/metrics-scraper TCP/9400']);
      assert.deepEqual(summary(w.egress), ['coordinator TCP/29400', 'worker TCP/29500', 'any UDP/53,TCP/53']);
      // Every port a container listens on is reachable through its policy, and nothing else.
      for (const [j, p] of [[coord, c], [workers, w]] as const) {
        const open = new Set(p.ingress.flatMap((r) => r.ports.map((x) => x.port)));
        assert.deepEqual([...open].sort(), j.template.spec.containers[0]!.ports.map((x) => x.containerPort).sort());
      }
    });
  }

  void it('the unknown-field check catches a typo the schemas let through', () => {
    const objs = kustomize(path.join(ROOT, OVERLAYS[0].dir));
    const bad = structuredClone(objs.find((x) => x.kind === 'Job' && x.metadata.name === 'onelora-workers')!) as K8sObject & { spec: { template: { spec: Record<string, unknown> } } };
    const pod = bad.spec.template.spec;
    pod.contianers = pod.containers;
    (bad.spec as Record<string, unknown>).completionsMode = 'Indexed';
    const errors = k8sErrors(bad);
    assert.ok(errors.includes('Job/onelora-workers: spec.template.spec.contianers: unknown field'), errors.join('\n'));
    assert.ok(errors.includes('Job/onelora-workers: spec.completionsMode: unknown field'), errors.join('\n'));
    assert.equal(errors.length, 2, 'labels, annotations and ConfigMap data are maps, not fields');
    delete pod.containers;
    assert.ok(k8sErrors(bad).some((e) => e.includes('schema') && e.includes('containers')), 'the schema itself still runs');
  });
});
