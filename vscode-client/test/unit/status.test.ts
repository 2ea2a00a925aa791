import { describe, expect, it } from 'vitest';
import type { FolderStatus } from '../../src/protocol';
import { describeStatus, summarizeStatus } from '../../src/status';

const folder = (over: Partial<FolderStatus>): FolderStatus => ({
    uri: 'file:///ws/shop',
    state: 'idle',
    files: 40,
    indexedFiles: 40,
    chunks: 310,
    pendingChunks: 0,
    embedding: { provider: 'local', model: 'all-MiniLM-L6-v2', dimension: 384 },
    store: { uri: '/home/me/.cache/code-context/index.db' },
    ...over,
});

describe('summarizeStatus', () => {
    it('shows progress while any folder indexes', () => {
        const s = summarizeStatus({ folders: [folder({ state: 'indexing', indexedFiles: 12 }), folder({ uri: 'file:///ws/b', files: 10, indexedFiles: 10 })] });
        expect(s.state).toBe('indexing');
        expect(s.banner).toBe('indexing 22/50 files: results may be incomplete');
        expect(s.text).toBe('$(sync~spin) Code Context 22/50');
    });

    it('is idle with totals when done', () => {
        const s = summarizeStatus({ folders: [folder({})] });
        expect(s.state).toBe('idle');
        expect(s.banner).toBeUndefined();
        expect(s.text).toBe('$(search) Code Context');
        expect(s.tooltip).toContain('40 files, 310 chunks');
    });

    it('reports errors with their message', () => {
        const s = summarizeStatus({ folders: [folder({ state: 'error', lastError: 'store unreachable' })] });
        expect(s.state).toBe('error');
        expect(s.tooltip).toContain('store unreachable');
    });

    it('treats no folders as idle', () => {
        expect(summarizeStatus({ folders: [] }).state).toBe('idle');
    });
});

describe('describeStatus', () => {
    it('lists every folder by name with its counts, embedding, store and error', () => {
        const text = describeStatus({ folders: [folder({ pendingChunks: 5, lastError: 'rate limited' })] }, [{ uri: 'file:///ws/shop/', name: 'shop' }]);
        expect(text).toContain('shop: idle');
        expect(text).toContain('files: 40/40 indexed, chunks: 310 (5 pending)');
        expect(text).toContain('embedding: local all-MiniLM-L6-v2 (384 dimensions)');
        expect(text).toContain('store: /home/me/.cache/code-context/index.db');
        expect(text).toContain('last error: rate limited');
    });

    it('counts redacted secrets only when there are some', () => {
        const names = [{ uri: 'file:///ws/shop/', name: 'shop' }];
        expect(describeStatus({ folders: [folder({ redactions: 3, redactedFiles: 2 })] }, names)).toContain('secrets redacted: 3 in 2 files');
        expect(describeStatus({ folders: [folder({ redactions: 0, redactedFiles: 0 })] }, names)).not.toContain('redacted');
    });

    it('says when nothing is indexed', () => {
        expect(describeStatus({ folders: [] }, [])).toBe('No workspace folder is indexed.');
    });
});
