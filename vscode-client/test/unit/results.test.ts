import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { SearchResponse } from '../../src/protocol';
import { dedent, formatLines, formatResults, formatScore, lastLine, relativePath, snippetLines, symbolKindName } from '../../src/results';

/** Hand-written results with exact values; search-response.json is a recorded real server response. */
const fixture = JSON.parse(readFileSync(new URL('../fixtures/handmade-response.json', import.meta.url), 'utf8')) as SearchResponse;
const range = (sl: number, sc: number, el: number, ec: number) => ({ start: { line: sl, character: sc }, end: { line: el, character: ec } });

describe('line ranges', () => {
    it('shows 1-based inclusive lines of an end-exclusive range', () => {
        expect(formatLines(range(11, 0, 19, 0))).toBe('12–19');
        expect(formatLines(range(3, 0, 9, 1))).toBe('4–10');
        expect(formatLines(range(4, 2, 4, 9))).toBe('5');
        expect(formatLines(range(4, 0, 5, 0))).toBe('5');
        expect(lastLine(range(7, 0, 7, 0))).toBe(7);
    });
});

describe('relativePath', () => {
    const one = [{ uri: 'file:///workspace/shop', name: 'shop' }];
    const two = [...one, { uri: 'file:///workspace/shop/vendor/lib', name: 'lib' }];

    it('is relative to the containing folder', () => {
        expect(relativePath('file:///workspace/shop/src/cart.py', one)).toBe('src/cart.py');
    });

    it('prefixes the folder name in multi-root workspaces, choosing the innermost folder', () => {
        expect(relativePath('file:///workspace/shop/src/cart.py', two)).toBe('shop/src/cart.py');
        expect(relativePath('file:///workspace/shop/vendor/lib/x.go', two)).toBe('lib/x.go');
    });

    it('decodes escapes and keeps files outside the workspace absolute', () => {
        expect(relativePath('file:///workspace/shop/my%20docs/a.md', one)).toBe('my docs/a.md');
        expect(relativePath('file:///elsewhere/b.py', one)).toBe('/elsewhere/b.py');
        expect(relativePath('file:///workspace/shopping/c.py', one)).toBe('/workspace/shopping/c.py');
    });
});

describe('scores, kinds and snippets', () => {
    it('formats scores with three significant digits', () => {
        expect(formatScore(0.83123)).toBe('0.831');
        expect(formatScore(0.016393)).toBe('0.0164');
        expect(formatScore(12.5)).toBe('12.5');
        expect(formatScore(0)).toBe('0');
        expect(formatScore(Number.NaN)).toBe('–');
    });

    it('names LSP symbol kinds', () => {
        expect(symbolKindName(12)).toBe('function');
        expect(symbolKindName(5)).toBe('class');
        expect(symbolKindName(6)).toBe('method');
        expect(symbolKindName(0)).toBeUndefined();
        expect(symbolKindName(99)).toBeUndefined();
        expect(symbolKindName(undefined)).toBeUndefined();
    });

    it('removes common indentation but keeps relative indentation', () => {
        expect(dedent(['    def f():', '        return 1', '', '    x = 2'])).toEqual(['def f():', '    return 1', '', 'x = 2']);
        expect(dedent(['a', '  b'])).toEqual(['a', '  b']);
    });

    it('cuts long snippets and counts the lines left out', () => {
        const content = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n') + '\n\n';
        const { lines, more } = snippetLines(content, 12);
        expect(lines).toHaveLength(12);
        expect(lines[11]).toBe('line 11');
        expect(more).toBe(18);
        expect(snippetLines('a\r\nb\r\n', 12)).toEqual({ lines: ['a', 'b'], skipped: 0, more: 0 });
    });

    it('starts the window at the symbol when it is defined below the first lines', () => {
        const content = ['import os', ...Array.from({ length: 14 }, () => ''), '@cache', 'def load_config(path):', '    return path', 'x = 1'].join('\n');
        const { lines, skipped, more } = snippetLines(content, 4, 'load_config');
        expect(skipped).toBe(15);
        expect(lines).toEqual(['@cache', 'def load_config(path):', '    return path', 'x = 1']);
        expect(more).toBe(0);
        // Not for a symbol already visible, nor for a name that only appears inside another word.
        expect(snippetLines('def f():\n  pass\n' + 'x\n'.repeat(20), 4, 'f').skipped).toBe(0);
        expect(snippetLines('a\n'.repeat(20) + 'load_config_v2()', 4, 'load_config').skipped).toBe(0);
    });
});

describe('formatResults', () => {
    it('turns protocol results into view items', () => {
        const items = formatResults(fixture.results, [{ uri: 'file:///workspace/shop', name: 'shop' }]);
        expect(items).toHaveLength(2);
        expect(items[0]).toMatchObject({
            id: 0,
            uri: 'file:///workspace/shop/src/cart.py',
            path: 'src/cart.py',
            lines: '12–19',
            score: '0.831',
            language: 'python',
            symbol: 'cart_total',
            kind: 'function',
            firstLine: 12,
            moreLines: 0,
        });
        expect(items[0].snippet[0]).toBe('def cart_total(items, tax_rate=0.2):');
        expect(items[0].range).toEqual(fixture.results[0].range);
        expect(items[1]).toMatchObject({ path: 'web/checkout.js', lines: '4–10', symbol: 'formatPrice' });
    });

    it('formats recorded server results so the symbol is in view', () => {
        const recorded = JSON.parse(readFileSync(new URL('../fixtures/search-response.json', import.meta.url), 'utf8')) as SearchResponse;
        for (const item of formatResults(recorded.results, [{ uri: 'file:///workspace/shop', name: 'shop' }])) {
            expect(item.path).not.toMatch(/^\/|^file:/);
            expect(item.snippet.length).toBeLessThanOrEqual(12);
            if (item.symbol) {
                expect(item.snippet.some((line) => line.includes(item.symbol!))).toBe(true);
            }
        }
    });

    it('tolerates results without symbol, kind or content', () => {
        const [item] = formatResults([{ uri: 'file:///w/a.txt', range: range(0, 0, 1, 0), score: 1, language: 'text', content: '' }], []);
        expect(item.symbol).toBeUndefined();
        expect(item.kind).toBeUndefined();
        expect(item.snippet).toEqual(['']);
    });
});
