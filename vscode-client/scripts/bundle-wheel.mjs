// Builds the server wheel that the .vsix carries: `npm run package` runs this first (prepackage).
// The wheel is built from this repository (pyproject.toml, README.md, lsp_server/) copied to a temporary folder,
// so nothing stale from an earlier build/ gets in, with `pip wheel --no-deps`: no download when the Python that
// builds it has setuptools (the repository's .venv does).
// Usage: node scripts/bundle-wheel.mjs [--out DIR]   (default: bundled/; old wheels there are removed)
// The Python: CODE_CONTEXT_PYTHON, else <repo>/.venv/bin/python, else python3.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const client = fileURLToPath(new URL('..', import.meta.url));
const repo = resolve(client, '..');
const outFlag = process.argv.indexOf('--out');
const out = resolve(outFlag >= 0 ? process.argv[outFlag + 1] : join(client, 'bundled'));
const venvPython = join(repo, '.venv', process.platform === 'win32' ? 'Scripts/python.exe' : 'bin/python');
const python = process.env.CODE_CONTEXT_PYTHON || (existsSync(venvPython) ? venvPython : 'python3');

function fail(message) {
    console.error(`bundle-wheel: ${message}`);
    process.exit(1);
}

if (!existsSync(join(repo, 'pyproject.toml'))) {
    fail(`no pyproject.toml in ${repo}: the server wheel is built from the repository around vscode-client/.`);
}
const source = mkdtempSync(join(tmpdir(), 'cc-wheel-src-'));
try {
    for (const entry of ['pyproject.toml', 'README.md', 'lsp_server']) {
        cpSync(join(repo, entry), join(source, entry), {
            recursive: true,
            filter: (path) => basename(path) !== '__pycache__' && !path.endsWith('.pyc'),
        });
    }
    mkdirSync(out, { recursive: true });
    for (const name of readdirSync(out)) {
        if (/^code_context_lsp-.*\.whl$/.test(name)) {
            rmSync(join(out, name));
        }
    }
    // Without build isolation when setuptools is there (offline); else pip fetches it from the package index.
    const haveSetuptools = spawnSync(python, ['-c', 'import setuptools'], { stdio: 'ignore' }).status === 0;
    const args = ['-m', 'pip', 'wheel', '--no-deps', '--disable-pip-version-check', '-q', ...(haveSetuptools ? ['--no-build-isolation'] : []), '-w', out, source];
    const build = spawnSync(python, args, { stdio: 'inherit' });
    if (build.error || build.status !== 0) {
        fail(`${python} ${args.join(' ')} failed (${build.error?.message ?? `exit code ${build.status}`}).`);
    }
} finally {
    rmSync(source, { recursive: true, force: true });
}
const wheels = readdirSync(out).filter((name) => /^code_context_lsp-.*\.whl$/.test(name));
if (wheels.length !== 1) {
    fail(`expected one code_context_lsp wheel in ${out}, found ${wheels.length}.`);
}
console.log(`bundle-wheel: ${join(out, wheels[0])}`);
