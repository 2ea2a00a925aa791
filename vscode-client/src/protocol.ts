/**
 * The Code Context protocol: the server's custom requests and their types.
 *
 * This module must not import `vscode` so that it can be shared by the extension,
 * the unit tests and the protocol integration test.
 */
import { RequestType } from 'vscode-languageserver-protocol';

/** A position in a text document: 0-based line and UTF-16 character offset. */
export interface Position {
    line: number;
    character: number;
}

/** An LSP range: 0-based, end exclusive. */
export interface Range {
    start: Position;
    end: Position;
}

export type SearchMode = 'hybrid' | 'semantic' | 'keyword';
export const SEARCH_MODES: readonly SearchMode[] = ['hybrid', 'semantic', 'keyword'];

export interface SearchParams {
    query: string;
    /** 1..100 */
    limit?: number;
    /** A workspace folder URI; all folders when omitted. */
    workspaceFolder?: string;
    include?: string[];
    exclude?: string[];
    languages?: string[];
    mode?: SearchMode;
}

export interface SearchResult {
    uri: string;
    range: Range;
    /** Higher is better. */
    score: number;
    language: string;
    content: string;
    symbol?: string;
    /** An LSP SymbolKind. */
    kind?: number;
}

export interface SearchResponse {
    results: SearchResult[];
    /** True while indexing runs: results may be incomplete. */
    partial: boolean;
}

export interface SimilarParams {
    uri: string;
    range: Range;
    limit?: number;
}

export type FolderState = 'idle' | 'indexing' | 'error';

export interface FolderStatus {
    uri: string;
    state: FolderState;
    files: number;
    indexedFiles: number;
    chunks: number;
    pendingChunks: number;
    /** Secrets replaced before storing or embedding; absent from older servers. */
    redactions?: number;
    redactedFiles?: number;
    embedding: { provider: string; model: string; dimension: number; baseUrl?: string };
    store: { uri: string };
    lastError?: string | null;
}

// The server takes `{}` for status.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface StatusParams {}

export interface StatusResponse {
    folders: FolderStatus[];
}

export interface ReindexParams {
    workspaceFolder?: string;
    force?: boolean;
}

export interface ReindexResponse {
    started: boolean;
}

export interface ClearIndexParams {
    workspaceFolder?: string;
}

// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ClearIndexResponse {}

export const SearchRequest = new RequestType<SearchParams, SearchResponse, void>('codeContext/search');
export const SimilarRequest = new RequestType<SimilarParams, SearchResponse, void>('codeContext/similar');
export const StatusRequest = new RequestType<StatusParams, StatusResponse, void>('codeContext/status');
export const ReindexRequest = new RequestType<ReindexParams, ReindexResponse, void>('codeContext/reindex');
export const ClearIndexRequest = new RequestType<ClearIndexParams, ClearIndexResponse, void>('codeContext/clearIndex');

/** The settings the server reads from initializationOptions and `workspace/configuration` (section `codeContext`). */
export interface ServerSettings {
    embedding?: {
        provider?: 'local' | 'openai' | 'hash';
        model?: string;
        baseUrl?: string;
        apiKeyEnv?: string;
        batchSize?: number;
        dimensions?: number;
        concurrency?: number;
        maxTokensPerRequest?: number;
        timeout?: number;
        maxRetries?: number;
    };
    store?: { uri?: string; tokenEnv?: string };
    index?: { include?: string[]; exclude?: string[]; maxFileSizeKb?: number; respectGitignore?: boolean; redactSecrets?: boolean };
    search?: { limit?: number; mode?: SearchMode };
}
