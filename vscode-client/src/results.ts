/**
 * Turns protocol search results into what the panel renders. Pure: no `vscode` import.
 */
import type { Range, SearchResult } from './protocol';

/** A workspace folder as the formatter needs it. */
export interface Folder {
    uri: string;
    name: string;
}

/** One result as the webview renders it. Plain JSON, posted to the webview. */
export interface ResultItem {
    id: number;
    uri: string;
    range: Range;
    /** Workspace-relative path, prefixed with the folder name in multi-root workspaces. */
    path: string;
    /** e.g. "12–20" (1-based, inclusive). */
    lines: string;
    score: string;
    language: string;
    symbol?: string;
    /** e.g. "function", from the LSP SymbolKind. */
    kind?: string;
    /** 1-based number of the first snippet line (the snippet may start below the range's first line). */
    firstLine: number;
    /** The snippet, common indentation removed, at most `maxLines` lines. */
    snippet: string[];
    /** Lines cut from the snippet. */
    moreLines: number;
}

export interface FormatOptions {
    maxLines?: number;
}

const SYMBOL_KINDS = [
    '', 'file', 'module', 'namespace', 'package', 'class', 'method', 'property', 'field', 'constructor',
    'enum', 'interface', 'function', 'variable', 'constant', 'string', 'number', 'boolean', 'array',
    'object', 'key', 'null', 'enum member', 'struct', 'event', 'operator', 'type parameter',
];

/** The lowercase name of an LSP SymbolKind, or undefined for an unknown kind. */
export function symbolKindName(kind: number | undefined): string | undefined {
    return kind !== undefined && kind >= 1 && kind < SYMBOL_KINDS.length ? SYMBOL_KINDS[kind] : undefined;
}

/** The last line a range covers (0-based): an end at character 0 of a later line does not cover that line. */
export function lastLine(range: Range): number {
    const { start, end } = range;
    return end.line > start.line && end.character === 0 ? end.line - 1 : Math.max(end.line, start.line);
}

/** "12" or "12–20": 1-based inclusive line numbers of a range. */
export function formatLines(range: Range): string {
    const first = range.start.line + 1;
    const last = lastLine(range) + 1;
    return first === last ? `${first}` : `${first}–${last}`;
}

/** A score with three significant digits: 0.8312 → "0.831", 0.01639 → "0.0164", 12.5 → "12.5". */
export function formatScore(score: number): string {
    if (!Number.isFinite(score)) {
        return '–';
    }
    if (score === 0) {
        return '0';
    }
    return Math.abs(score) >= 100 ? score.toFixed(0) : String(Number(score.toPrecision(3)));
}

function decodePath(path: string): string {
    try {
        return decodeURIComponent(path);
    } catch {
        return path;
    }
}

function trimSlash(uri: string): string {
    return uri.endsWith('/') ? uri.slice(0, -1) : uri;
}

/**
 * The path of `uri` relative to the workspace folder that contains it, with "/" separators.
 * Multi-root workspaces prefix the folder name; a file outside every folder keeps its full path.
 */
export function relativePath(uri: string, folders: readonly Folder[]): string {
    // The longest matching folder wins, for nested folders.
    const match = [...folders]
        .sort((a, b) => b.uri.length - a.uri.length)
        .find((f) => uri.startsWith(trimSlash(f.uri) + '/'));
    if (match) {
        const rel = decodePath(uri.slice(trimSlash(match.uri).length + 1));
        return folders.length > 1 ? `${match.name}/${rel}` : rel;
    }
    const path = uri.replace(/^file:\/\//, '');
    return decodePath(path);
}

/** Removes the indentation shared by all non-blank lines. Tabs count as one column. */
export function dedent(lines: readonly string[]): string[] {
    let common = Infinity;
    for (const line of lines) {
        if (line.trim() === '') {
            continue;
        }
        common = Math.min(common, line.length - line.trimStart().length);
    }
    if (!Number.isFinite(common) || common === 0) {
        return [...lines];
    }
    return lines.map((line) => line.slice(Math.min(common, line.length - line.trimStart().length)));
}

function escapeRegExp(text: string): string {
    return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The snippet to show: trailing blank lines dropped, at most `maxLines` lines, dedented. When the chunk is
 * longer than that and its symbol is defined below the first window (a chunk that starts with imports, say),
 * the window starts at the symbol instead, keeping one decorator or comment line above it.
 */
export function snippetLines(content: string, maxLines: number, symbol?: string): { lines: string[]; skipped: number; more: number } {
    const all = content.replace(/\r\n?/g, '\n').split('\n');
    while (all.length > 1 && all[all.length - 1].trim() === '') {
        all.pop();
    }
    let start = 0;
    if (symbol && all.length > maxLines) {
        const pattern = new RegExp(`(^|[^\\w$])${escapeRegExp(symbol)}([^\\w$]|$)`);
        const at = all.findIndex((line) => pattern.test(line));
        if (at >= maxLines - 1) {
            start = at > 0 && all[at - 1].trim() !== '' ? at - 1 : at;
        }
    }
    const shown = dedent(all.slice(start, start + maxLines));
    return { lines: shown, skipped: start, more: Math.max(0, all.length - start - shown.length) };
}

export function formatResult(result: SearchResult, id: number, folders: readonly Folder[], options: FormatOptions = {}): ResultItem {
    const { lines, skipped, more } = snippetLines(result.content ?? '', options.maxLines ?? 12, result.symbol);
    return {
        id,
        uri: result.uri,
        range: result.range,
        path: relativePath(result.uri, folders),
        lines: formatLines(result.range),
        score: formatScore(result.score),
        language: result.language,
        symbol: result.symbol || undefined,
        kind: symbolKindName(result.kind),
        firstLine: result.range.start.line + 1 + skipped,
        snippet: lines,
        moreLines: more,
    };
}

export function formatResults(results: readonly SearchResult[], folders: readonly Folder[], options: FormatOptions = {}): ResultItem[] {
    return results.map((r, i) => formatResult(r, i, folders, options));
}
