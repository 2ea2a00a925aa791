import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
    { ignores: ['dist/', 'out/', 'node_modules/', 'test-results/', '*.vsix'] },
    js.configs.recommended,
    {
        files: ['**/*.ts', '**/*.mts'],
        extends: [...tseslint.configs.recommended],
        rules: {
            '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
            '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
            eqeqeq: 'error',
            curly: 'error',
        },
    },
    {
        files: ['src/**/*.ts'],
        rules: {
            'no-console': 'error',
        },
    },
    {
        files: ['media/**/*.js', 'test/browser/*.js'],
        languageOptions: { sourceType: 'script', globals: { ...globals.browser, acquireVsCodeApi: 'readonly' } },
        rules: { eqeqeq: 'error' },
    },
    {
        files: ['*.mjs', 'scripts/**/*.mjs', 'test/**/*.mjs'],
        languageOptions: { globals: globals.node },
    },
);
