/**
 * Messages between the extension and the search webview (media/panel.js). Pure types and guards.
 */
import type { Range, SearchMode } from './protocol';
import type { ResultItem } from './results';

/** Buttons the webview may show; each runs one extension command. */
export type PanelAction = 'reindex' | 'showOutput' | 'openPythonSetting' | 'restartServer' | 'showStatus';

export interface PanelQuery {
    query: string;
    mode: SearchMode;
    /** Comma-separated globs. */
    include: string;
    /** Comma-separated language ids. */
    language: string;
}

/** Webview → extension. */
export type FromPanel =
    | { type: 'ready' }
    | ({ type: 'search' } & PanelQuery)
    | { type: 'open'; uri: string; range: Range }
    | { type: 'action'; action: PanelAction };

/** Extension → webview. */
export type ToPanel =
    | { type: 'config'; mode: SearchMode }
    | { type: 'focus'; query?: string }
    | { type: 'searching'; title?: string }
    | { type: 'results'; query: string; title?: string; items: ResultItem[]; partial: boolean; filtered: boolean }
    | { type: 'cleared' }
    | { type: 'error'; message: string; actions: PanelAction[] }
    | { type: 'server'; state: 'starting' | 'running' | 'stopped' | 'failed'; message?: string; actions: PanelAction[] }
    | { type: 'indexing'; banner?: string };

const ACTIONS: readonly PanelAction[] = ['reindex', 'showOutput', 'openPythonSetting', 'restartServer', 'showStatus'];

function isRange(value: unknown): value is Range {
    const r = value as Range;
    const isPos = (p: unknown) =>
        typeof p === 'object' && p !== null && Number.isInteger((p as Range['start']).line) && Number.isInteger((p as Range['start']).character);
    return typeof r === 'object' && r !== null && isPos(r.start) && isPos(r.end);
}

/** Validates a message from the webview; anything malformed is dropped. */
export function parsePanelMessage(raw: unknown): FromPanel | undefined {
    if (typeof raw !== 'object' || raw === null) {
        return undefined;
    }
    const m = raw as Record<string, unknown>;
    switch (m.type) {
        case 'ready':
            return { type: 'ready' };
        case 'search':
            if (typeof m.query !== 'string') {
                return undefined;
            }
            return {
                type: 'search',
                query: m.query,
                mode: m.mode === 'semantic' || m.mode === 'keyword' ? m.mode : 'hybrid',
                include: typeof m.include === 'string' ? m.include : '',
                language: typeof m.language === 'string' ? m.language : '',
            };
        case 'open':
            return typeof m.uri === 'string' && isRange(m.range) ? { type: 'open', uri: m.uri, range: m.range } : undefined;
        case 'action':
            return ACTIONS.includes(m.action as PanelAction) ? { type: 'action', action: m.action as PanelAction } : undefined;
        default:
            return undefined;
    }
}

/** Splits a comma-separated filter field into trimmed, non-empty values. */
export function splitList(value: string): string[] {
    return value
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
}
