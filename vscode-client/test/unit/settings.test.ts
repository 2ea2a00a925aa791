import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
    apiKeyEnvName,
    expandPath,
    isApiKeyMissing,
    nestedGetter,
    parsePort,
    SERVER_SETTING_KEYS,
    serverEnvironment,
    toServerSettings,
} from '../../src/settings';

type Contributed = Record<string, { type: string | string[]; default: unknown }>;
const contributed = (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        contributes: { configuration: { properties: Contributed } };
    }
).contributes.configuration.properties;

/** What VS Code returns for `codeContext` with the package.json defaults and a few user values. */
const configured = {
    server: { pythonPath: '/opt/py/bin/python', tcpPort: null },
    trace: { server: 'off' },
    embedding: { provider: 'openai', model: 'text-embedding-3-small', baseUrl: null, apiKeyEnv: 'OPENAI_API_KEY', batchSize: 64, dimensions: null },
    store: { uri: '', tokenEnv: null },
    index: { include: ['src/**'], exclude: [], maxFileSizeKb: 512, respectGitignore: false, redactSecrets: false },
    search: { limit: 25, mode: 'keyword' },
};

describe('toServerSettings', () => {
    it('keeps the four server sections with camelCase keys and drops null and empty values', () => {
        expect(toServerSettings(nestedGetter(configured))).toEqual({
            embedding: { provider: 'openai', model: 'text-embedding-3-small', apiKeyEnv: 'OPENAI_API_KEY', batchSize: 64 },
            index: { include: ['src/**'], exclude: [], maxFileSizeKb: 512, respectGitignore: false, redactSecrets: false },
            search: { limit: 25, mode: 'keyword' },
        });
    });

    it('never sends client-only sections to the server', () => {
        const settings = toServerSettings(nestedGetter(configured)) as Record<string, unknown>;
        expect(settings).not.toHaveProperty('server');
        expect(settings).not.toHaveProperty('trace');
        expect(settings).not.toHaveProperty('store');
    });

    it('drops values of the wrong type instead of passing them on', () => {
        const settings = toServerSettings(
            nestedGetter({ embedding: { batchSize: '32', provider: 7 }, index: { include: ['a', 3], respectGitignore: 'yes' }, search: { limit: NaN } }),
        );
        expect(settings).toEqual({});
    });

    it('is empty when nothing is configured', () => {
        expect(toServerSettings(() => undefined)).toEqual({});
        expect(toServerSettings(nestedGetter(null))).toEqual({});
    });

    it('passes on every server setting package.json contributes, and only those', () => {
        // tests/test_vscode_settings.py holds package.json to lsp_server/settings.py; this holds settings.ts to package.json.
        const serverKeys = Object.keys(contributed)
            .filter((key) => !key.startsWith('codeContext.server.') && !key.startsWith('codeContext.trace.'))
            .map((key) => key.slice('codeContext.'.length));
        const known = Object.entries(SERVER_SETTING_KEYS).flatMap(([section, keys]) => Object.keys(keys).map((key) => `${section}.${key}`));
        expect(known.sort()).toEqual(serverKeys.sort());
        // Each contributed default (when not null) survives toServerSettings, so each kind matches its schema type.
        const defaults = toServerSettings((key) => contributed[`codeContext.${key}`]?.default);
        for (const key of serverKeys) {
            const value = contributed[`codeContext.${key}`].default;
            const [section, name] = key.split('.');
            const sent = (defaults as Record<string, Record<string, unknown> | undefined>)[section]?.[name];
            expect(sent, key).toEqual(value === null || value === '' ? undefined : value);
        }
    });

    it('sends the embedding request limits', () => {
        const get = nestedGetter({ embedding: { concurrency: 8, maxTokensPerRequest: 50_000, timeout: 12.5, maxRetries: 0 } });
        expect(toServerSettings(get)).toEqual({ embedding: { concurrency: 8, maxTokensPerRequest: 50_000, timeout: 12.5, maxRetries: 0 } });
    });

    it('copies arrays so later changes to the configuration do not leak in', () => {
        const include = ['a/**'];
        const settings = toServerSettings(nestedGetter({ index: { include } }));
        include.push('b/**');
        expect(settings.index?.include).toEqual(['a/**']);
    });
});

describe('API keys', () => {
    it('uses the configured variable name, defaulting to OPENAI_API_KEY', () => {
        expect(apiKeyEnvName(nestedGetter({ embedding: { apiKeyEnv: 'MY_KEY' } }))).toBe('MY_KEY');
        expect(apiKeyEnvName(nestedGetter({ embedding: { apiKeyEnv: '  ' } }))).toBe('OPENAI_API_KEY');
        expect(apiKeyEnvName(() => undefined)).toBe('OPENAI_API_KEY');
    });

    it('passes a stored key to the server under the configured name without touching the base env', () => {
        const base = { PATH: '/bin', MY_KEY: 'from-env' };
        const env = serverEnvironment(base, 'MY_KEY', 'from-secret-storage');
        expect(env).toEqual({ PATH: '/bin', MY_KEY: 'from-secret-storage' });
        expect(base.MY_KEY).toBe('from-env');
        expect(serverEnvironment(base, 'MY_KEY', undefined).MY_KEY).toBe('from-env');
    });

    it('reports a missing key only for the OpenAI endpoint with no key anywhere', () => {
        const openai = nestedGetter({ embedding: { provider: 'openai', apiKeyEnv: 'K' } });
        expect(isApiKeyMissing(openai, {}, undefined)).toBe(true);
        expect(isApiKeyMissing(openai, { K: 'x' }, undefined)).toBe(false);
        expect(isApiKeyMissing(openai, {}, 'secret')).toBe(false);
        expect(isApiKeyMissing(nestedGetter({ embedding: { provider: 'openai', baseUrl: 'http://127.0.0.1:8080/v1' } }), {}, undefined)).toBe(false);
        expect(isApiKeyMissing(nestedGetter({ embedding: { provider: 'local' } }), {}, undefined)).toBe(false);
    });
});

describe('expandPath and parsePort', () => {
    it('expands workspace folder, home and environment variables', () => {
        const vars = { workspaceFolder: '/ws', userHome: '/home/me', env: { VENV: '/venvs/a' } };
        expect(expandPath('${workspaceFolder}/.venv/bin/python', vars)).toBe('/ws/.venv/bin/python');
        expect(expandPath('~/py/bin/python', vars)).toBe('/home/me/py/bin/python');
        expect(expandPath('${env:VENV}/bin/python', vars)).toBe('/venvs/a/bin/python');
        expect(expandPath('/usr/bin/python3', vars)).toBe('/usr/bin/python3');
    });

    it('accepts only valid TCP ports', () => {
        expect(parsePort(2087)).toBe(2087);
        expect(parsePort('2087')).toBe(2087);
        for (const bad of [null, undefined, '', 'abc', 0, 70000, 20.5]) {
            expect(parsePort(bad)).toBeUndefined();
        }
    });
});
