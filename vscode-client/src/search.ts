/**
 * Search-as-you-type: debounces queries and cancels stale requests. Pure: the token source is injected
 * (the extension passes `vscode.CancellationTokenSource`, tests pass a fake).
 */

import type { SearchParams } from './protocol';
import { splitList, type PanelQuery } from './messages';

export interface CancellationTokenLike {
    readonly isCancellationRequested: boolean;
}

export interface TokenSourceLike<T extends CancellationTokenLike = CancellationTokenLike> {
    readonly token: T;
    cancel(): void;
    dispose(): void;
}

export type Outcome<P, R> =
    | { kind: 'result'; params: P; value: R }
    | { kind: 'error'; params: P; error: unknown };

export interface DebouncedRequestOptions<P, R, T extends CancellationTokenLike> {
    /** Sends the request; must honour the token. */
    send: (params: P, token: T) => Promise<R>;
    newTokenSource: () => TokenSourceLike<T>;
    /** Called when a request is sent (after the debounce). */
    onStart?: (params: P) => void;
    /** Called with the outcome of the latest request only; stale and cancelled ones are dropped. */
    onOutcome: (outcome: Outcome<P, R>) => void;
    delayMs?: number;
}

export const SEARCH_DEBOUNCE_MS = 250;

export class DebouncedRequest<P, R, T extends CancellationTokenLike = CancellationTokenLike> {
    private timer: ReturnType<typeof setTimeout> | undefined;
    private inFlight: TokenSourceLike<T> | undefined;
    private generation = 0;
    private readonly delayMs: number;

    constructor(private readonly options: DebouncedRequestOptions<P, R, T>) {
        this.delayMs = options.delayMs ?? SEARCH_DEBOUNCE_MS;
    }

    /** Schedules a request; any pending or running one is superseded. */
    schedule(params: P, immediate = false): void {
        this.cancel();
        const generation = this.generation;
        if (immediate) {
            void this.run(params, generation);
        } else {
            this.timer = setTimeout(() => void this.run(params, generation), this.delayMs);
        }
    }

    /** Drops the pending request and cancels the running one. */
    cancel(): void {
        this.generation++;
        if (this.timer !== undefined) {
            clearTimeout(this.timer);
            this.timer = undefined;
        }
        if (this.inFlight) {
            this.inFlight.cancel();
            this.inFlight.dispose();
            this.inFlight = undefined;
        }
    }

    dispose(): void {
        this.cancel();
    }

    private async run(params: P, generation: number): Promise<void> {
        this.timer = undefined;
        const source = this.options.newTokenSource();
        this.inFlight = source;
        this.options.onStart?.(params);
        let outcome: Outcome<P, R>;
        try {
            outcome = { kind: 'result', params, value: await this.options.send(params, source.token) };
        } catch (error) {
            outcome = { kind: 'error', params, error };
        }
        if (generation !== this.generation || source.token.isCancellationRequested) {
            return; // Superseded: a newer request owns the view.
        }
        this.inFlight = undefined;
        source.dispose();
        this.options.onOutcome(outcome);
    }
}

/** The `codeContext/search` params for what the user typed in the panel. */
export function toSearchParams(query: PanelQuery, limit: unknown): SearchParams {
    const params: SearchParams = { query: query.query.trim(), mode: query.mode };
    if (typeof limit === 'number' && Number.isInteger(limit)) {
        params.limit = Math.min(100, Math.max(1, limit));
    }
    const include = splitList(query.include);
    if (include.length) {
        params.include = include;
    }
    const languages = splitList(query.language).map((l) => l.toLowerCase());
    if (languages.length) {
        params.languages = languages;
    }
    return params;
}
