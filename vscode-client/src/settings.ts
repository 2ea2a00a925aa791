/**
 * Settings: `codeContext.*` in VS Code → the server's settings object.
 *
 * Pure logic, no `vscode` import: the extension passes a getter over its configuration.
 */
import type { ServerSettings } from './protocol';

/** Reads one dotted key below `codeContext`, e.g. `embedding.model`. */
export type ConfigGetter = (key: string) => unknown;

type Kind = 'string' | 'number' | 'boolean' | 'string[]';

/** The sections and keys the server understands, with the JSON type each must have. */
export const SERVER_SETTING_KEYS: Readonly<Record<keyof ServerSettings, Readonly<Record<string, Kind>>>> = {
    embedding: {
        provider: 'string',
        model: 'string',
        baseUrl: 'string',
        apiKeyEnv: 'string',
        batchSize: 'number',
        dimensions: 'number',
        concurrency: 'number',
        maxTokensPerRequest: 'number',
        timeout: 'number',
        maxRetries: 'number',
    },
    store: { uri: 'string', tokenEnv: 'string' },
    index: { include: 'string[]', exclude: 'string[]', maxFileSizeKb: 'number', respectGitignore: 'boolean', redactSecrets: 'boolean' },
    search: { limit: 'number', mode: 'string' },
};

export const DEFAULT_API_KEY_ENV = 'OPENAI_API_KEY';

/** The SecretStorage key of the embedding API key set with “Code Context: Set API Key”. */
export const API_KEY_SECRET = 'codeContext.embedding.apiKey';

function hasKind(value: unknown, kind: Kind): boolean {
    switch (kind) {
        case 'string':
            return typeof value === 'string' && value.trim() !== '';
        case 'number':
            return typeof value === 'number' && Number.isFinite(value);
        case 'boolean':
            return typeof value === 'boolean';
        case 'string[]':
            return Array.isArray(value) && value.every((v) => typeof v === 'string');
    }
}

/**
 * The nested, camelCase settings object for initializationOptions and `workspace/configuration`.
 * Only the embedding/store/index/search sections; unset, null, empty-string and mistyped values are omitted
 * so the server applies its own defaults.
 */
export function toServerSettings(get: ConfigGetter): ServerSettings {
    const out: Record<string, Record<string, unknown>> = {};
    for (const [section, keys] of Object.entries(SERVER_SETTING_KEYS)) {
        for (const [key, kind] of Object.entries(keys)) {
            const value = get(`${section}.${key}`);
            if (hasKind(value, kind)) {
                (out[section] ??= {})[key] = Array.isArray(value) ? [...(value as string[])] : value;
            }
        }
    }
    return out as ServerSettings;
}

/** A getter over a nested JSON object such as the one `workspace/configuration` returns for `codeContext`. */
export function nestedGetter(root: unknown): ConfigGetter {
    return (key) => {
        let node: unknown = root;
        for (const part of key.split('.')) {
            if (node === null || typeof node !== 'object') {
                return undefined;
            }
            node = (node as Record<string, unknown>)[part];
        }
        return node;
    };
}

/** The environment variable that holds the embedding API key. */
export function apiKeyEnvName(get: ConfigGetter): string {
    const name = get('embedding.apiKeyEnv');
    return typeof name === 'string' && name.trim() !== '' ? name.trim() : DEFAULT_API_KEY_ENV;
}

/**
 * The server process environment: the extension host's, plus the API key from SecretStorage (if any)
 * under the configured variable name. A stored key wins over an inherited variable.
 */
export function serverEnvironment(
    base: NodeJS.ProcessEnv,
    keyEnv: string,
    secret: string | undefined,
): NodeJS.ProcessEnv {
    const env = { ...base };
    if (secret) {
        env[keyEnv] = secret;
    }
    return env;
}

/** True when the OpenAI provider is chosen against the OpenAI endpoint and no key is available anywhere. */
export function isApiKeyMissing(get: ConfigGetter, env: NodeJS.ProcessEnv, secret: string | undefined): boolean {
    if (get('embedding.provider') !== 'openai') {
        return false;
    }
    const baseUrl = get('embedding.baseUrl');
    if (typeof baseUrl === 'string' && baseUrl.trim() !== '') {
        return false; // A self-hosted OpenAI-compatible endpoint may not need a key.
    }
    return !secret && !env[apiKeyEnvName(get)];
}

/** Where the server comes from: a TCP port to connect to (development), or a Python to start. */
export type ServerLaunch = { kind: 'tcp'; port: number; host: string } | { kind: 'stdio'; python: string; args: string[] };

export const SERVER_MODULE_ARGS = ['-m', 'lsp_server'];

/** Replaces `${workspaceFolder}`, `${userHome}` and `${env:NAME}` in a path setting. */
export function expandPath(value: string, vars: { workspaceFolder?: string; userHome?: string; env: NodeJS.ProcessEnv }): string {
    return value
        .replace(/\$\{workspaceFolder\}/g, vars.workspaceFolder ?? '${workspaceFolder}')
        .replace(/\$\{userHome\}/g, vars.userHome ?? '${userHome}')
        .replace(/\$\{env:([^}]+)\}/g, (_m, name: string) => vars.env[name] ?? '')
        .replace(/^~(?=$|[\\/])/, vars.userHome ?? '~');
}

/** Parses a TCP port from a setting or environment variable; undefined when unset or invalid. */
export function parsePort(value: unknown): number | undefined {
    const port = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    return typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}
