/**
 * The search view in a real browser: media/panel.{html,js,css} served on 127.0.0.1 with a stand-in for the
 * VS Code host (host.js) that answers with recorded server results, driven by playwright-core in the system
 * Chromium. Never downloads a browser.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderHtml } from '../../src/html';
import type { SearchResponse } from '../../src/protocol';
import { formatResults } from '../../src/results';
import { skipUnless } from '../requirements';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const root = new URL('../../', import.meta.url);
const file = (path: string) => readFileSync(new URL(path, root));
const resultsDir = new URL('test-results/', root);

// A missing browser fails in CI (CI=true; .ci/run installs it) and is skipped with one line elsewhere.
const skipReason = skipUnless(
    existsSync(CHROMIUM),
    'the browser test (search view in Chromium)',
    `no Chromium at ${CHROMIUM}`,
    'apt-get install chromium, or set CHROMIUM_PATH to a Chromium binary',
);

/** The recorded server response, formatted exactly as the extension does before posting it. */
const recorded = JSON.parse(file('test/fixtures/search-response.json').toString()) as SearchResponse;
const folder = { uri: 'file:///workspace/shop', name: 'shop' };
const fixture = {
    items: formatResults(recorded.results, [folder]),
    banner: 'indexing 12/40 files: results may be incomplete',
};

const NONCE = 'testnonce0123456789';
let server: Server;
let baseUrl: string;
let context: BrowserContext;
let userDataDir: string;

function page(): string {
    const html = renderHtml(file('media/panel.html').toString(), {
        cspSource: baseUrl,
        nonce: NONCE,
        scriptUri: `${baseUrl}/media/panel.js`,
        styleUri: `${baseUrl}/media/panel.css`,
    });
    // The host injects the theme variables and acquireVsCodeApi before the view's own code.
    return html.replace(
        '</head>',
        `    <link rel="stylesheet" href="${baseUrl}/test/theme-dark.css">\n` +
            `    <script nonce="${NONCE}" src="${baseUrl}/test/fixture.js"></script>\n` +
            `    <script nonce="${NONCE}" src="${baseUrl}/test/host.js"></script>\n</head>`,
    );
}

const routes: Record<string, () => [string, string | Buffer]> = {
    '/': () => ['text/html', page()],
    '/media/panel.js': () => ['text/javascript', file('media/panel.js')],
    '/media/panel.css': () => ['text/css', file('media/panel.css')],
    '/test/theme-dark.css': () => ['text/css', file('test/browser/theme-dark.css')],
    '/test/host.js': () => ['text/javascript', file('test/browser/host.js')],
    '/test/fixture.js': () => ['text/javascript', `window.__FIXTURE = ${JSON.stringify(fixture)};`],
};

async function open(): Promise<{ page: Page; problems: string[] }> {
    const p = await context.newPage();
    const problems: string[] = [];
    p.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') {
            problems.push(m.text());
        }
    });
    p.on('pageerror', (e) => problems.push(e.message));
    await p.goto(`${baseUrl}/`);
    return { page: p, problems };
}

const posted = (p: Page) => p.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted);

describe('search view in Chromium', { skip: skipReason !== undefined, meta: { skipReason } }, () => {
    beforeAll(async () => {
        server = createServer((req, res) => {
            const path = new URL(req.url ?? '/', 'http://x').pathname;
            const route = routes[path];
            if (path === '/favicon.ico') {
                res.writeHead(204).end();
                return;
            }
            if (!route) {
                res.writeHead(404).end();
                return;
            }
            const [type, body] = route();
            res.writeHead(200, { 'content-type': `${type}; charset=utf-8` }).end(body);
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        userDataDir = mkdtempSync(join(tmpdir(), 'cc-chromium-'));
        context = await chromium.launchPersistentContext(userDataDir, {
            executablePath: CHROMIUM,
            headless: true,
            args: [
                '--headless',
                '--no-sandbox',
                '--disable-gpu',
                '--disable-quic',
                '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
            ],
            viewport: { width: 380, height: 640 },
            deviceScaleFactor: 1,
        });
        mkdirSync(resultsDir, { recursive: true });
    });

    afterAll(async () => {
        await context?.close();
        await new Promise((resolve) => server?.close(resolve));
        if (userDataDir) {
            rmSync(userDataDir, { recursive: true, force: true });
        }
    });

    it('explains itself before the first query and shows the indexing banner', async () => {
        const { page: p, problems } = await open();
        await expect.poll(() => p.textContent('#message')).toContain('Type to search the code in your workspace');
        await expect.poll(() => p.textContent('#banner')).toBe('Indexing 12/40 files: results may be incomplete');
        expect((await posted(p)).map((m) => m.type)).toEqual(['ready']);
        expect(problems).toEqual([]);
        await p.close();
    });

    it('searches as the user types, renders coloured results and opens the clicked one', async () => {
        const { page: p, problems } = await open();
        await p.fill('#include', '');
        await p.locator('#query').pressSequentially('cart total', { delay: 20 });
        await p.waitForSelector('.result');
        const items = p.locator('.result');
        expect(await items.count()).toBe(fixture.items.length);

        const first = fixture.items[0];
        const head = await items.first().locator('.result-head').innerText();
        const slash = first.path.lastIndexOf('/');
        expect(head).toContain(first.path.slice(slash + 1));
        expect(head).toContain(`:${first.lines}`);
        expect(head).toContain(first.score);
        if (first.symbol) {
            expect(await items.first().locator('.symbol').innerText()).toBe(first.symbol);
        }
        // The snippet keeps its text exactly, with line numbers, and is syntax-coloured.
        const rows = items.first().locator('.snippet .row');
        expect(await rows.count()).toBe(first.snippet.length);
        expect(await rows.first().locator('.ln').innerText()).toBe(String(first.firstLine));
        expect(await rows.first().locator('.code').innerText()).toBe(first.snippet[0]);
        expect(await items.first().locator('.tok-keyword').count()).toBeGreaterThan(0);
        const keywordColour = await items.first().locator('.tok-keyword').first().evaluate((e) => getComputedStyle(e).color);
        expect(keywordColour).toBe('rgb(78, 148, 206)'); // --vscode-debugTokenExpression-boolean of the theme

        // Every keystroke is posted (the extension debounces); the last one carries the whole query.
        const searches = (await posted(p)).filter((m) => m.type === 'search') as unknown as { query: string; mode: string }[];
        expect(searches.at(-1)).toMatchObject({ query: 'cart total', mode: 'hybrid' });

        await p.screenshot({ path: new URL('panel.png', resultsDir).pathname, fullPage: false });

        await items.nth(1).click();
        const opened = (await posted(p)).filter((m) => m.type === 'open');
        expect(opened).toEqual([{ type: 'open', uri: fixture.items[1].uri, range: fixture.items[1].range }]);
        expect(await items.nth(1).getAttribute('class')).toContain('selected');

        // Keyboard: ArrowDown from the query box, Enter opens.
        await p.focus('#query');
        await p.keyboard.press('ArrowDown');
        await p.keyboard.press('Enter');
        expect((await posted(p)).filter((m) => m.type === 'open').at(-1)).toMatchObject({ uri: fixture.items[0].uri });
        expect(problems).toEqual([]);
        await p.close();
    });

    it('explains an empty result', async () => {
        const { page: p } = await open();
        await p.fill('#query', 'nothing');
        await expect.poll(() => p.textContent('#message')).toContain('No results for “nothing”.');
        expect(await p.textContent('#message')).toContain('Indexing is still running');
        expect(await p.locator('.result').count()).toBe(0);
        expect(await p.isVisible('#message.empty')).toBe(true);
        await p.close();
    });

    it('shows errors in words with a working action button', async () => {
        const { page: p, problems } = await open();
        await p.fill('#query', 'error');
        await p.waitForSelector('#message.error');
        expect(await p.textContent('#message')).toContain('Search was rejected by the server: include: expected a list of strings');
        await p.screenshot({ path: new URL('panel-error.png', resultsDir).pathname });
        await p.click('button[data-action="showOutput"]');
        expect((await posted(p)).filter((m) => m.type === 'action')).toEqual([{ type: 'action', action: 'showOutput' }]);
        // Clearing the query returns to the welcome text, never a blank panel.
        await p.fill('#query', '');
        await expect.poll(() => p.textContent('#message')).toContain('Type to search');
        expect(problems).toEqual([]);
        await p.close();
    });

    it('restores the query, filters and results when the view is re-created (webview state)', async () => {
        const { page: p, problems } = await open();
        await p.selectOption('#mode', 'keyword');
        await p.fill('#language', 'python');
        await p.fill('#query', 'cart total');
        await p.waitForSelector('.result');
        await p.reload();
        expect(await p.inputValue('#query')).toBe('cart total');
        expect(await p.inputValue('#mode')).toBe('keyword');
        expect(await p.inputValue('#language')).toBe('python');
        expect(await p.locator('.result').count()).toBe(fixture.items.length);
        // Restoring does not search again.
        expect((await posted(p)).map((m) => m.type)).toEqual(['ready']);
        expect(problems).toEqual([]);
        await p.close();
    });
});
