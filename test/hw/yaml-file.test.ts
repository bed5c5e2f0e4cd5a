import t from 'tap';
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorCode } from '../../protocol/errors.js';
import { loadYamlFile, parseYaml } from '../../hw/yaml-file.js';
import { ferryErrorFrom, lineOf } from './fixtures/helpers.js';

const Schema = z.strictObject({
  name: z.string(),
  port: z.number().int(),
  tls: z.strictObject({ enabled: z.boolean(), certPath: z.string() }),
});

const good = ['# a small config', 'name: relay', 'port: 8443', 'tls:', '  enabled: true', '  certPath: /etc/ferry/cert.pem', ''].join('\n');

t.test('yaml-file - a valid document parses to the schema output', async (t) => {
  t.same(parseYaml(good, 'c.yaml', Schema), { name: 'relay', port: 8443, tls: { enabled: true, certPath: '/etc/ferry/cert.pem' } });
});

t.test('yaml-file - unknown key names the key path and its line', async (t) => {
  const text = good.replace('  enabled: true', '  enabled: true\n  ciphers: strong');
  const err = ferryErrorFrom(() => parseYaml(text, 'c.yaml', Schema));
  t.equal(err.code, ErrorCode.CONFIG_INVALID, 'code defaults to CONFIG_INVALID');
  t.match(err.message, `c.yaml:${lineOf(text, 'ciphers:')}: tls.ciphers: unknown key`);
});

t.test('yaml-file - wrong type says the expected type, on the field line', async (t) => {
  const text = good.replace('port: 8443', 'port: eighty');
  const err = ferryErrorFrom(() => parseYaml(text, 'c.yaml', Schema));
  t.match(err.message, `c.yaml:${lineOf(text, 'port:')}: port: expected number, received string`);
});

t.test('yaml-file - missing field says missing and points at its parent key', async (t) => {
  const text = good.replace('  certPath: /etc/ferry/cert.pem\n', '');
  const err = ferryErrorFrom(() => parseYaml(text, 'c.yaml', Schema));
  t.match(err.message, `c.yaml:${lineOf(text, 'tls:')}: tls.certPath: missing; expected string`);
  const noName = good.replace('name: relay\n', '');
  // A missing top-level field has no parent key: the file's first line.
  t.match(ferryErrorFrom(() => parseYaml(noName, 'c.yaml', Schema)).message, `c.yaml:1: name: missing`);
});

t.test('yaml-file - several problems are all reported', async (t) => {
  const text = good.replace('port: 8443', 'port: 1.5').replace('  enabled: true', '  enabled: yes please');
  const err = ferryErrorFrom(() => parseYaml(text, 'c.yaml', Schema));
  t.match(err.message, `c.yaml:${lineOf(text, 'port:')}: port:`);
  t.match(err.message, `c.yaml:${lineOf(text, 'enabled:')}: tls.enabled: expected boolean`);
});

t.test('yaml-file - invalid YAML names the line of the syntax error', async (t) => {
  const dup = good.replace('port: 8443', 'port: 8443\nport: 9443');
  t.match(ferryErrorFrom(() => parseYaml(dup, 'c.yaml', Schema)).message, `c.yaml:${lineOf(dup, 'port: 9443')}: not valid YAML`);
  const tab = good.replace('  certPath', '\tcertPath');
  t.match(ferryErrorFrom(() => parseYaml(tab, 'c.yaml', Schema)).message, `c.yaml:${lineOf(tab, '\tcertPath')}: not valid YAML`);
});

t.test('yaml-file - loadYamlFile reads a file and passes its error code through', async (t) => {
  const dir = t.testdir({ 'ok.yaml': good, 'bad.yaml': good.replace('port: 8443', 'port: "8443"') });
  t.equal(loadYamlFile(join(dir, 'ok.yaml'), Schema).port, 8443);
  const err = ferryErrorFrom(() => loadYamlFile(join(dir, 'bad.yaml'), Schema, ErrorCode.PROFILE_INVALID));
  t.equal(err.code, ErrorCode.PROFILE_INVALID);
  t.match(err.message, `${join(dir, 'bad.yaml')}:3: port: expected number`);
});

t.test('yaml-file - a missing file fails with its path', async (t) => {
  const path = join(t.testdir({}), 'absent.yaml');
  const err = ferryErrorFrom(() => loadYamlFile(path, Schema));
  t.equal(err.code, ErrorCode.CONFIG_INVALID);
  t.match(err.message, `${path}: cannot read file (ENOENT)`);
});
