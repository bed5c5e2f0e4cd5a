/**
 * PEM files for the TLS tunnel, read and checked when a gateway or agent starts, so a wrong path,
 * a file that is not PEM or a key that does not belong to its certificate stops it at once with
 * CONFIG_INVALID naming the setting and the file, instead of failing every handshake later.
 */
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ErrorCode, FerryError } from './errors.js';

export interface TlsFilePaths {
  cert?: string;
  key?: string;
  ca?: string;
}

export interface TlsFiles {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** subject CN of `cert` */
  certSubject?: string;
}

const pemBlock = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function invalid(setting: string, path: string, what: string, cause?: unknown): FerryError {
  return new FerryError(ErrorCode.CONFIG_INVALID, `${setting}: ${path}: ${what}`, cause === undefined ? undefined : { cause });
}

function read(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw invalid(setting, path, `cannot read file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, err);
  }
}

/** Every certificate in a PEM file; at least one. */
function certificates(setting: string, path: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('latin1').match(pemBlock) ?? [];
  if (blocks.length === 0) throw invalid(setting, path, 'no PEM certificate in the file (expected -----BEGIN CERTIFICATE-----)');
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw invalid(setting, path, `not a valid certificate (${(err as Error).message})`, err);
    }
  });
}

export function subjectCN(cert: X509Certificate): string | undefined {
  const line = cert.subject.split('\n').find((l) => l.startsWith('CN='));
  return line?.slice(3);
}

/**
 * Reads the files named under `prefix` (`tls` → settings `tls.cert`, `tls.key`, `tls.ca`).
 * `cert` and `key` go together; the key must be unencrypted and match the certificate.
 */
export function loadTlsFiles(paths: TlsFilePaths, prefix = 'tls'): TlsFiles {
  const out: TlsFiles = {};
  if ((paths.cert === undefined) !== (paths.key === undefined)) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${prefix}.cert and ${prefix}.key go together: give both or neither`);
  }
  if (paths.ca !== undefined) {
    out.ca = read(`${prefix}.ca`, paths.ca);
    certificates(`${prefix}.ca`, paths.ca, out.ca);
  }
  if (paths.cert !== undefined && paths.key !== undefined) {
    out.cert = read(`${prefix}.cert`, paths.cert);
    const leaf = certificates(`${prefix}.cert`, paths.cert, out.cert)[0]!;
    out.key = read(`${prefix}.key`, paths.key);
    let key: KeyObject;
    try {
      key = createPrivateKey(out.key);
    } catch (err) {
      throw invalid(`${prefix}.key`, paths.key, `not a usable unencrypted PEM private key (${(err as Error).message})`, err);
    }
    if (!leaf.checkPrivateKey(key)) throw invalid(`${prefix}.key`, paths.key, `does not belong to the certificate in ${paths.cert}`);
    const cn = subjectCN(leaf);
    if (cn !== undefined) out.certSubject = cn;
  }
  return out;
}
