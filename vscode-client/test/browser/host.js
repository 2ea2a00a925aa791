// @ts-nocheck: a plain browser script standing in for the VS Code host.
// A stand-in for the VS Code webview host and the extension behind it, for the browser test.
// It records what the view posts (window.__posted) and answers like src/panel.ts does, from
// window.__FIXTURE (formatted recorded server results, injected by the test).
(function () {
    'use strict';
    window.__posted = [];
    let timer;
    const reply = (message) => window.postMessage(message, '*');

    function answer(search) {
        const query = search.query.trim();
        clearTimeout(timer);
        if (!query) {
            reply({ type: 'cleared' });
            return;
        }
        // Debounced like the extension; only the last query is answered.
        timer = setTimeout(() => {
            reply({ type: 'searching' });
            setTimeout(() => {
                if (query === 'error') {
                    reply({
                        type: 'error',
                        message: 'Search was rejected by the server: include: expected a list of strings',
                        actions: ['showOutput'],
                    });
                } else if (query === 'nothing') {
                    reply({ type: 'results', query, items: [], partial: true, filtered: !!search.include });
                } else {
                    reply({ type: 'results', query, items: window.__FIXTURE.items, partial: false, filtered: false });
                }
            }, 50);
        }, 250);
    }

    window.acquireVsCodeApi = () => ({
        postMessage(message) {
            window.__posted.push(message);
            if (message.type === 'ready') {
                reply({ type: 'config', mode: 'hybrid' });
                reply({ type: 'server', state: 'running', actions: [] });
                reply({ type: 'indexing', banner: window.__FIXTURE.banner });
            } else if (message.type === 'search') {
                answer(message);
            }
        },
        // Kept in sessionStorage, so a reload behaves like VS Code re-creating a hidden view.
        getState: () => JSON.parse(sessionStorage.getItem('vscode-state') || 'null') || undefined,
        setState: (value) => sessionStorage.setItem('vscode-state', JSON.stringify(value)),
    });
})();
