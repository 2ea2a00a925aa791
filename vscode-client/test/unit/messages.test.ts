import { describe, expect, it } from 'vitest';
import { parsePanelMessage, splitList } from '../../src/messages';

describe('parsePanelMessage', () => {
    it('accepts well-formed messages', () => {
        expect(parsePanelMessage({ type: 'ready' })).toEqual({ type: 'ready' });
        expect(parsePanelMessage({ type: 'search', query: 'q', mode: 'keyword', include: 'src/**', language: 'go' })).toEqual({
            type: 'search', query: 'q', mode: 'keyword', include: 'src/**', language: 'go',
        });
        const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 4 } };
        expect(parsePanelMessage({ type: 'open', uri: 'file:///a.py', range })).toEqual({ type: 'open', uri: 'file:///a.py', range });
        expect(parsePanelMessage({ type: 'action', action: 'reindex' })).toEqual({ type: 'action', action: 'reindex' });
    });

    it('defaults a bad mode to hybrid and missing filters to empty', () => {
        expect(parsePanelMessage({ type: 'search', query: 'q', mode: 'fuzzy' })).toEqual({ type: 'search', query: 'q', mode: 'hybrid', include: '', language: '' });
    });

    it('drops malformed messages and unknown actions', () => {
        for (const bad of [null, 'ready', {}, { type: 'search' }, { type: 'open', uri: 'x', range: { start: {} } }, { type: 'action', action: 'rm -rf' }, { type: 'eval' }]) {
            expect(parsePanelMessage(bad)).toBeUndefined();
        }
    });
});

describe('splitList', () => {
    it('splits on commas and trims', () => {
        expect(splitList(' a, b ,,c ')).toEqual(['a', 'b', 'c']);
        expect(splitList('')).toEqual([]);
    });
});
