// Optional TLS for the control plane (gRPC). Insecure stays the default: on loopback and inside a
// private cluster network the job token is the authentication. The PEM files come from flags or,
// for a Kubernetes Secret mounted as files, from ONELORA_TLS_CERT / ONELORA_TLS_KEY / ONELORA_TLS_CA.
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { UserError, messageOf } from '../errors.js';

export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** Where each file came from, for error messages: `--tls-cert` or `ONELORA_TLS_CERT`. */
interface TlsFile {
  source: string;
  path: string;
}

interface TlsFiles {
  cert?: TlsFile;
  key?: TlsFile;
  ca?: TlsFile;
}

function pick(flag: string, value: string | undefined, envName: string, env: NodeJS.ProcessEnv): TlsFile | undefined {
  if (value) return { source: flag, path: value };
  const fromEnv = env[envName];
  return fromEnv ? { source: envName, path: fromEnv } : undefined;
}

/** Flags win over the environment, file by file. */
function tlsFiles(f: TlsFlags, env: NodeJS.ProcessEnv = process.env): TlsFiles {
  return {
    cert: pick('--tls-cert', f.tlsCert, 'ONELORA_TLS_CERT', env),
    key: pick('--tls-key', f.tlsKey, 'ONELORA_TLS_KEY', env),
    ca: pick('--tls-ca', f.tlsCa, 'ONELORA_TLS_CA', env),
  };
}

function read(file: TlsFile): Buffer {
  let data: Buffer;
  try {
    data = fs.readFileSync(file.path);
  } catch (err) {
    throw new UserError(`${file.source} ${file.path}: cannot read it (${messageOf(err)})`, { cause: err });
  }
  if (!data.toString('latin1').includes('-----BEGIN ')) throw new UserError(`${file.source} ${file.path}: not a PEM file`);
  return data;
}

function pair(files: TlsFiles, role: string): { cert: TlsFile; key: TlsFile } | null {
  if (!files.cert && !files.key) return null;
  if (!files.cert) throw new UserError(`${role}: ${files.key!.source} given without --tls-cert (or ONELORA_TLS_CERT)`);
  if (!files.key) throw new UserError(`${role}: ${files.cert.source} given without --tls-key (or ONELORA_TLS_KEY)`);
  return { cert: files.cert, key: files.key };
}

/**
 * The coordinator's credentials: insecure without a certificate; TLS with --tls-cert/--tls-key;
 * with --tls-ca as well, workers must present a client certificate signed by that CA (mutual TLS).
 */
export function serverCredentials(f: TlsFlags, env: NodeJS.ProcessEnv = process.env): { credentials: grpc.ServerCredentials; tls: boolean; mutual: boolean } {
  const files = tlsFiles(f, env);
  const p = pair(files, 'coordinator');
  if (!p) {
    if (files.ca) throw new UserError(`coordinator: ${files.ca.source} given without --tls-cert and --tls-key (or ONELORA_TLS_CERT/KEY)`);
    return { credentials: grpc.ServerCredentials.createInsecure(), tls: false, mutual: false };
  }
  const ca = files.ca ? read(files.ca) : null;
  const credentials = grpc.ServerCredentials.createSsl(ca, [{ cert_chain: read(p.cert), private_key: read(p.key) }], ca !== null);
  return { credentials, tls: true, mutual: ca !== null };
}

/**
 * A worker's credentials: insecure unless --tls-ca (the CA that signed the coordinator's
 * certificate; a self-signed certificate is its own CA) or a client certificate is given; without
 * --tls-ca the system's root certificates are trusted.
 */
export function clientCredentials(f: TlsFlags, env: NodeJS.ProcessEnv = process.env): { credentials: grpc.ChannelCredentials; tls: boolean } {
  const files = tlsFiles(f, env);
  const p = pair(files, 'worker');
  if (!p && !files.ca) return { credentials: grpc.credentials.createInsecure(), tls: false };
  const ca = files.ca ? read(files.ca) : null;
  const credentials = p ? grpc.credentials.createSsl(ca, read(p.key), read(p.cert)) : grpc.credentials.createSsl(ca);
  return { credentials, tls: true };
}
