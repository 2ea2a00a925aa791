import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DebouncedRequest, SEARCH_DEBOUNCE_MS, toSearchParams, type Outcome, type TokenSourceLike } from '../../src/search';

class FakeTokenSource implements TokenSourceLike {
    readonly token = { isCancellationRequested: false };
    disposed = false;
    cancel(): void {
        this.token.isCancellationRequested = true;
    }
    dispose(): void {
        this.disposed = true;
    }
}

interface Deferred {
    query: string;
    token: { isCancellationRequested: boolean };
    resolve(value: string): void;
    reject(error: unknown): void;
}

function setup() {
    const sent: Deferred[] = [];
    const outcomes: Outcome<string, string>[] = [];
    const started: string[] = [];
    const sources: FakeTokenSource[] = [];
    const request = new DebouncedRequest<string, string>({
        send: (query, token) => new Promise((resolve, reject) => sent.push({ query, token, resolve, reject })),
        newTokenSource: () => {
            const source = new FakeTokenSource();
            sources.push(source);
            return source;
        },
        onStart: (q) => started.push(q),
        onOutcome: (o) => outcomes.push(o),
    });
    return { request, sent, outcomes, started, sources };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('DebouncedRequest', () => {
    it('sends only the last query typed within the debounce window', async () => {
        const { request, sent, started } = setup();
        request.schedule('p');
        await vi.advanceTimersByTimeAsync(100);
        request.schedule('pa');
        await vi.advanceTimersByTimeAsync(100);
        request.schedule('parse');
        await vi.advanceTimersByTimeAsync(SEARCH_DEBOUNCE_MS - 1);
        expect(sent).toHaveLength(0);
        await vi.advanceTimersByTimeAsync(1);
        expect(sent.map((s) => s.query)).toEqual(['parse']);
        expect(started).toEqual(['parse']);
    });

    it('cancels the running request when a newer one is scheduled and drops its late result', async () => {
        const { request, sent, outcomes, sources } = setup();
        request.schedule('old');
        await vi.advanceTimersByTimeAsync(SEARCH_DEBOUNCE_MS);
        request.schedule('new');
        expect(sent[0].token.isCancellationRequested).toBe(true);
        expect(sources[0].disposed).toBe(true);
        await vi.advanceTimersByTimeAsync(SEARCH_DEBOUNCE_MS);
        sent[0].resolve('old results');
        sent[1].resolve('new results');
        await vi.runAllTimersAsync();
        expect(outcomes).toEqual([{ kind: 'result', params: 'new', value: 'new results' }]);
        expect(sent[1].token.isCancellationRequested).toBe(false);
    });

    it('delivers errors of the latest request', async () => {
        const { request, sent, outcomes } = setup();
        request.schedule('q', true);
        await vi.advanceTimersByTimeAsync(0);
        const error = new Error('boom');
        sent[0].reject(error);
        await vi.runAllTimersAsync();
        expect(outcomes).toEqual([{ kind: 'error', params: 'q', error }]);
    });

    it('runs immediately when asked, without waiting for the debounce', async () => {
        const { request, sent } = setup();
        request.schedule('now', true);
        await vi.advanceTimersByTimeAsync(0);
        expect(sent.map((s) => s.query)).toEqual(['now']);
    });

    it('cancel() drops the pending request and ignores the running one', async () => {
        const { request, sent, outcomes } = setup();
        request.schedule('running');
        await vi.advanceTimersByTimeAsync(SEARCH_DEBOUNCE_MS);
        request.schedule('pending');
        request.cancel();
        await vi.advanceTimersByTimeAsync(SEARCH_DEBOUNCE_MS * 2);
        sent[0].resolve('late');
        await vi.runAllTimersAsync();
        expect(sent).toHaveLength(1);
        expect(outcomes).toEqual([]);
    });
});

describe('toSearchParams', () => {
    it('maps the panel fields to protocol params', () => {
        expect(toSearchParams({ query: '  parse config ', mode: 'semantic', include: 'src/**, lib/*.py', language: 'Python, go' }, 20)).toEqual({
            query: 'parse config',
            mode: 'semantic',
            limit: 20,
            include: ['src/**', 'lib/*.py'],
            languages: ['python', 'go'],
        });
    });

    it('omits empty filters and clamps the limit to 1..100', () => {
        expect(toSearchParams({ query: 'x', mode: 'hybrid', include: ' , ', language: '' }, 500)).toEqual({ query: 'x', mode: 'hybrid', limit: 100 });
        expect(toSearchParams({ query: 'x', mode: 'hybrid', include: '', language: '' }, 0).limit).toBe(1);
        expect(toSearchParams({ query: 'x', mode: 'keyword', include: '', language: '' }, undefined)).toEqual({ query: 'x', mode: 'keyword' });
    });
});
