/**
 * Throwaway certificates for TLS tests, made with the openssl CLI (scripts/bootstrap.sh test
 * installs it) in a directory the caller owns: a CA, a gateway certificate for 127.0.0.1 and
 * localhost (subject alternative names), client certificates with CN = an agent ID, and a second,
 * unrelated CA with its own gateway and client certificates. EC P-256 keys: quick to make.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Authority {
  /** the CA certificate (PEM path) */
  ca: string;
  caKey: string;
  /** a server certificate for 127.0.0.1 and localhost */
  gateway: CertFiles;
  /** a client certificate with subject CN = `cn`, made on first use */
  client(cn: string): CertFiles;
}

export interface TestCerts {
  dir: string;
  /** the CA the gateway trusts and the agents trust */
  main: Authority;
  /** an unrelated CA */
  other: Authority;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { code?: string; stderr?: Buffer };
    if (e.code === 'ENOENT') throw new Error('openssl not found: install it with `apt-get install -y openssl` (scripts/bootstrap.sh test does)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.toString() ?? String(err)}`);
  }
}

const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function leaf(dir: string, ca: string, caKey: string, name: string, subject: string, ext: string): CertFiles {
  const files = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  const csr = join(dir, `${name}.csr`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  openssl(['req', '-new', ...newKey, '-keyout', files.key, '-out', csr, '-subj', subject], dir);
  openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', files.cert, '-days', '2', '-extfile', extFile], dir);
  return files;
}

function authority(dir: string, name: string): Authority {
  mkdirSync(dir, { recursive: true });
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  openssl(['req', '-x509', ...newKey, '-keyout', caKey, '-out', ca, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const gateway = leaf(dir, ca, caKey, 'gateway', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  const clients = new Map<string, CertFiles>();
  return {
    ca, caKey, gateway,
    client(cn) {
      let c = clients.get(cn);
      if (!c) {
        c = leaf(dir, ca, caKey, `client-${clients.size}`, `/CN=${cn}`, 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
        clients.set(cn, c);
      }
      return c;
    },
  };
}

/** Makes both authorities under `dir` (a test's temporary directory). */
export function makeCerts(dir: string): TestCerts {
  return { dir, main: authority(join(dir, 'main-ca'), 'ferry test CA'), other: authority(join(dir, 'other-ca'), 'some other CA') };
}
