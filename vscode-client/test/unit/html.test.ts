import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeNonce, renderHtml } from '../../src/html';

const template = readFileSync(new URL('../../media/panel.html', import.meta.url), 'utf8');
const vars = { cspSource: 'https://webview.test', nonce: 'abc123', scriptUri: 'https://webview.test/panel.js', styleUri: 'https://webview.test/panel.css' };

describe('panel HTML', () => {
    it('fills every placeholder of media/panel.html', () => {
        const html = renderHtml(template, vars);
        expect(html).not.toMatch(/\{\{/);
        expect(html).toContain('<script nonce="abc123" src="https://webview.test/panel.js"></script>');
        expect(html).toContain('<link rel="stylesheet" href="https://webview.test/panel.css">');
    });

    it('has a strict CSP: scripts only with the nonce, no inline styles, nothing else loaded', () => {
        const csp = /http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(renderHtml(template, vars))?.[1] ?? '';
        expect(csp).toContain("default-src 'none'");
        expect(csp).toContain("script-src 'nonce-abc123'");
        expect(csp).toContain('style-src https://webview.test;');
        expect(csp).not.toContain('unsafe-inline');
        expect(csp).not.toContain('unsafe-eval');
    });

    it('has no inline script or style in the template', () => {
        expect(template).not.toMatch(/<script(?![^>]*\bsrc=)/);
        expect(template).not.toMatch(/<style|style="/);
    });

    it('escapes values and rejects unknown placeholders', () => {
        expect(renderHtml('<a href="{{scriptUri}}">', { ...vars, scriptUri: 'x" onload="y' })).toBe('<a href="x&quot; onload=&quot;y">');
        expect(() => renderHtml('{{nope}}', vars)).toThrow(/unknown placeholder/);
    });

    it('makes fresh alphanumeric nonces', () => {
        const a = makeNonce();
        expect(a).toMatch(/^[A-Za-z0-9]{16,}$/);
        expect(makeNonce()).not.toBe(a);
    });
});
