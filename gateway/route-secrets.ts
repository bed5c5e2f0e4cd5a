/**
 * The secrets a gateway's routes hold: an MQTT route's credentials (its keys, its password file,
 * or, still accepted, its URL) and a webhook route's header values. They are gathered once at
 * start, so that a password file is read (or refused) before anything opens, and so that the
 * gateway's log can take every one of them out of whatever it writes (common/redact.ts).
 */
import { ErrorCode, FerryError } from '../protocol/errors.js';
import type { RouteConfig } from './config.js';
import { credentialsFromUrl } from './handlers/mqtt.js';

/** Reads a whole text file; main.ts passes node:fs. */
export type ReadText = (path: string) => string;

/**
 * The password in `path` without its trailing line break(s). A missing, unreadable or empty file
 * is CONFIG_INVALID naming `field` (e.g. `routes[1].passwordFile`) and the file, never its content.
 */
export function readPasswordFile(path: string, field: string, read: ReadText): string {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
  const password = text.replace(/[\r\n]+$/, '');
  if (password.length === 0) throw new FerryError(ErrorCode.CONFIG_INVALID, `${field}: ${path} is empty`);
  return password;
}

/** What an MQTT connection's settings say about credentials: an mqtt route's, or `downlink.mqtt`. */
export interface MqttConnectionSettings {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
  passwordFile?: string | undefined;
}

export interface MqttCredentials {
  username?: string;
  password?: string;
  /** the URL carried them (still works; start-up warns that they belong in the keys) */
  inUrl: boolean;
}

/** The credentials an MQTT route (or `downlink.mqtt`) gives, from its keys or its password file; `at` is its path in the config (`routes[1]`). */
export function mqttCredentials(route: MqttConnectionSettings, at: string, read: ReadText): MqttCredentials {
  const password = route.passwordFile !== undefined ? readPasswordFile(route.passwordFile, `${at}.passwordFile`, read) : route.password;
  const fromUrl = credentialsFromUrl(route.url);
  const inUrl = fromUrl.username !== undefined || fromUrl.password !== undefined;
  if (inUrl && (route.username !== undefined || password !== undefined)) {
    throw new FerryError(ErrorCode.CONFIG_INVALID, `${at}.url: credentials in the url and in username/password${route.passwordFile !== undefined ? 'File' : ''}: keep them in the keys only`);
  }
  return {
    ...(route.username !== undefined && { username: route.username }),
    ...(password !== undefined && { password }),
    inUrl,
  };
}

/** Every secret value the routes hold, for the log to take out: passwords (keys, files, URLs) and webhook header values. */
export function routeSecrets(routes: readonly RouteConfig[], credentials: readonly (MqttCredentials | undefined)[]): string[] {
  const out: string[] = [];
  routes.forEach((r, i) => {
    if (r.handler === 'mqtt') {
      const pw = credentials[i]?.password ?? credentialsFromUrl(r.url).password;
      if (pw !== undefined) out.push(pw, encodeURIComponent(pw));
    }
    // A value, and the credentials after its scheme word (`Bearer TOKEN`).
    if (r.handler === 'webhook') for (const v of Object.values(r.headers)) out.push(v, v.replace(/^\S+\s+/, ''));
  });
  return out;
}
