/**
 * Index status: `codeContext/status` → status bar text, panel banner and the status report. Pure.
 */
import type { FolderStatus, StatusResponse } from './protocol';
import { relativePath, type Folder } from './results';

export type OverallState = 'idle' | 'indexing' | 'error';

export interface StatusSummary {
    state: OverallState;
    files: number;
    indexedFiles: number;
    chunks: number;
    /** e.g. "indexing 12/40 files: results may be incomplete"; set while indexing. */
    banner?: string;
    /** Status bar text, with codicons. */
    text: string;
    tooltip: string;
}

export function summarizeStatus(status: StatusResponse): StatusSummary {
    const folders = status.folders ?? [];
    const sum = (f: (s: FolderStatus) => number) => folders.reduce((n, s) => n + (Number(f(s)) || 0), 0);
    const files = sum((s) => s.files);
    const indexedFiles = sum((s) => s.indexedFiles);
    const chunks = sum((s) => s.chunks);
    const state: OverallState = folders.some((s) => s.state === 'indexing')
        ? 'indexing'
        : folders.some((s) => s.state === 'error')
          ? 'error'
          : 'idle';
    if (state === 'indexing') {
        const progress = `${indexedFiles}/${files}`;
        return {
            state,
            files,
            indexedFiles,
            chunks,
            banner: `indexing ${progress} files: results may be incomplete`,
            text: `$(sync~spin) Code Context ${progress}`,
            tooltip: `Code Context: indexing ${progress} files. Click for details.`,
        };
    }
    if (state === 'error') {
        const errors = folders.filter((s) => s.state === 'error').map((s) => s.lastError || 'unknown error');
        return {
            state,
            files,
            indexedFiles,
            chunks,
            text: '$(warning) Code Context',
            tooltip: `Code Context: indexing failed: ${errors.join('; ')}. Click for details.`,
        };
    }
    return {
        state,
        files,
        indexedFiles,
        chunks,
        text: '$(search) Code Context',
        tooltip: `Code Context: ${indexedFiles} files, ${chunks} chunks indexed. Click for details.`,
    };
}

/** A plain-text report of every folder's index, for “Show Index Status”. */
export function describeStatus(status: StatusResponse, folders: readonly Folder[]): string {
    if (!status.folders?.length) {
        return 'No workspace folder is indexed.';
    }
    return status.folders
        .map((s) => {
            const name = folders.find((f) => f.uri.replace(/\/$/, '') === s.uri.replace(/\/$/, ''))?.name ?? relativePath(s.uri, []);
            const lines = [
                `${name}: ${s.state}`,
                `  files: ${s.indexedFiles}/${s.files} indexed, chunks: ${s.chunks}${s.pendingChunks ? ` (${s.pendingChunks} pending)` : ''}`,
                `  embedding: ${s.embedding?.provider ?? '?'} ${s.embedding?.model ?? ''} (${s.embedding?.dimension ?? '?'} dimensions)`,
                `  store: ${s.store?.uri ?? '?'}`,
            ];
            if (s.redactions) {
                lines.push(`  secrets redacted: ${s.redactions} in ${s.redactedFiles ?? '?'} files`);
            }
            if (s.lastError) {
                lines.push(`  last error: ${s.lastError}`);
            }
            return lines.join('\n');
        })
        .join('\n\n');
}
