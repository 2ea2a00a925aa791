import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const vscodeMock = fileURLToPath(new URL('./test/unit/vscode.mock.ts', import.meta.url));

export default defineConfig({
    test: {
        projects: [
            {
                resolve: { alias: { vscode: vscodeMock } },
                test: { name: 'unit', include: ['test/unit/**/*.test.ts'], environment: 'node' },
            },
            {
                test: {
                    name: 'integration',
                    include: ['test/integration/**/*.test.ts'],
                    testTimeout: 240_000,
                    hookTimeout: 60_000,
                },
            },
            {
                test: {
                    name: 'browser',
                    include: ['test/browser/**/*.test.ts'],
                    testTimeout: 60_000,
                    hookTimeout: 60_000,
                },
            },
        ],
    },
});
