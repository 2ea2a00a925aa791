// @ts-check
// The Code Context search view. Talks to the extension with postMessage (see src/messages.ts).
// All text from the server is inserted with textContent, never as HTML.
(function () {
    'use strict';

    // @ts-ignore: provided by the VS Code webview host.
    const vscode = acquireVsCodeApi();

    /** @param {string} id */
    const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
    const form = /** @type {HTMLFormElement} */ ($('search-form'));
    const queryInput = /** @type {HTMLInputElement} */ ($('query'));
    const modeSelect = /** @type {HTMLSelectElement} */ ($('mode'));
    const includeInput = /** @type {HTMLInputElement} */ ($('include'));
    const languageInput = /** @type {HTMLInputElement} */ ($('language'));
    const progress = $('progress');
    const serverNotice = $('server');
    const banner = $('banner');
    const title = $('title');
    const message = $('message');
    const results = $('results');

    const ACTION_LABELS = {
        reindex: 'Reindex Workspace',
        showOutput: 'Show Server Output',
        openPythonSetting: 'Open Setting',
        restartServer: 'Restart Server',
        showStatus: 'Show Index Status',
    };

    const WELCOME =
        'Type to search the code in your workspace by meaning and keywords. ' +
        'To find code like a piece you are reading, select it and run “Code Context: Find Similar Code”.';

    /** Persisted across reloads of the view. */
    let state = vscode.getState() || { form: null, view: null };
    let indexingBanner = '';
    let lastPartial = false;

    // ---------------------------------------------------------------- syntax colouring

    const KEYWORDS = {
        python: 'and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case None True False self',
        js: 'async await break case catch class const continue debugger default delete do else export extends finally for from function get if import in instanceof let new of return set static super switch this throw try typeof var void while with yield null undefined true false interface type enum implements private protected public readonly declare namespace abstract as keyof',
        go: 'break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var nil true false',
        rust: 'as async await break const continue crate dyn else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while',
        c: 'auto break case char const continue default do double else enum extern float for goto if inline int long register return short signed sizeof static struct switch typedef union unsigned void volatile while bool true false NULL nullptr class namespace template typename public private protected virtual override new delete this using try catch throw const_cast static_cast',
        java: 'abstract boolean break byte case catch char class const continue default do double else enum extends final finally float for if implements import instanceof int interface long native new package private protected public return short static super switch synchronized this throw throws try void volatile while true false null var val fun object when is in override data sealed companion lateinit def trait extends with yield lazy implicit match case string bool namespace using readonly async await get set',
        ruby: 'alias and begin break case class def defined? do else elsif end ensure false for if in module next nil not or redo rescue retry return self super then true undef unless until when while yield require attr_reader attr_accessor',
        php: 'abstract and array as break callable case catch class clone const continue declare default do echo else elseif empty enddeclare endfor endforeach endif endswitch endwhile extends final finally fn for foreach function global goto if implements include instanceof insteadof interface isset list match namespace new or print private protected public require return static switch throw trait try unset use var while yield null true false',
        bash: 'if then else elif fi case esac for while until do done in function return local export readonly echo exit',
        lua: 'and break do else elseif end false for function goto if in local nil not or repeat return then true until while',
        sql: 'select from where and or not insert into values update set delete create table index view join left right inner outer on group by order having limit as null is in like distinct union all',
        json: 'true false null',
    };
    const LANGUAGE_GROUP = {
        python: 'python', javascript: 'js', typescript: 'js', tsx: 'js', jsx: 'js', vue: 'js', svelte: 'js',
        go: 'go', rust: 'rust', c: 'c', cpp: 'c', objc: 'c', csharp: 'java', java: 'java', kotlin: 'java', scala: 'java',
        swift: 'java', dart: 'java', groovy: 'java', ruby: 'ruby', php: 'php', bash: 'bash', lua: 'lua', sql: 'sql',
        json: 'json', yaml: 'json', toml: 'json',
    };
    const HASH_COMMENTS = new Set(['python', 'ruby', 'bash', 'yaml', 'toml', 'perl', 'r', 'elixir', 'make', 'dockerfile', 'powershell', 'cmake', 'julia', 'nim', 'php', 'ini', 'terraform']);
    const SLASH_COMMENTS = new Set(['javascript', 'typescript', 'tsx', 'jsx', 'go', 'rust', 'java', 'c', 'cpp', 'objc', 'csharp', 'php', 'scala', 'kotlin', 'swift', 'dart', 'groovy', 'zig', 'protobuf', 'scss', 'less', 'css', 'json', 'vue', 'svelte', 'fsharp', 'terraform']);
    const DASH_COMMENTS = new Set(['lua', 'sql', 'haskell', 'elm']);
    const DEFINERS = new Set(['def', 'class', 'function', 'fn', 'func', 'struct', 'interface', 'enum', 'trait', 'type', 'module', 'fun', 'object']);
    /** @type {Map<string, Set<string>>} */
    const keywordCache = new Map();

    /** @param {string} language */
    function keywordsFor(language) {
        const group = LANGUAGE_GROUP[/** @type {keyof typeof LANGUAGE_GROUP} */ (language)];
        let set = keywordCache.get(group || '');
        if (!set) {
            set = new Set(group ? KEYWORDS[/** @type {keyof typeof KEYWORDS} */ (group)].split(' ') : []);
            keywordCache.set(group || '', set);
        }
        return set;
    }

    /**
     * Splits code lines into coloured tokens. Deliberately simple: comments, strings, numbers, keywords,
     * definitions, calls and capitalised type names, with state carried across lines for block comments
     * and multi-line strings.
     * @param {string[]} lines
     * @param {string} language
     * @returns {{text: string, cls: string}[][]}
     */
    function tokenize(lines, language) {
        const keywords = keywordsFor(language);
        const lineComment = HASH_COMMENTS.has(language) ? ['#'] : [];
        if (SLASH_COMMENTS.has(language)) lineComment.push('//');
        if (DASH_COMMENTS.has(language)) lineComment.push('--');
        /** @type {[string, string, string][]} start, end, class */
        const blocks = [];
        if (SLASH_COMMENTS.has(language)) blocks.push(['/*', '*/', 'tok-comment']);
        if (language === 'python') blocks.push(['"""', '"""', 'tok-string'], ["'''", "'''", 'tok-string']);
        if (language === 'javascript' || language === 'typescript' || language === 'tsx') blocks.push(['`', '`', 'tok-string']);
        if (language === 'lua') blocks.unshift(['--[[', ']]', 'tok-comment']);
        if (language === 'html' || language === 'xml' || language === 'markdown' || language === 'vue' || language === 'svelte') blocks.push(['<!--', '-->', 'tok-comment']);
        const highlightCode = language !== 'markdown' && language !== 'text' && language !== 'rst';

        /** @type {{end: string, cls: string} | null} */
        let open = null;
        return lines.map((line) => {
            /** @type {{text: string, cls: string}[]} */
            const out = [];
            const push = (/** @type {string} */ text, /** @type {string} */ cls) => {
                const last = out[out.length - 1];
                if (last && last.cls === cls) last.text += text;
                else out.push({ text, cls });
            };
            let previousWord = '';
            let i = 0;
            while (i < line.length) {
                if (open) {
                    const end = line.indexOf(open.end, i);
                    const stop = end < 0 ? line.length : end + open.end.length;
                    push(line.slice(i, stop), open.cls);
                    i = stop;
                    if (end >= 0) open = null;
                    continue;
                }
                const rest = line.slice(i);
                const block = highlightCode || blocks.length ? blocks.find(([start]) => rest.startsWith(start)) : undefined;
                if (block) {
                    const end = line.indexOf(block[1], i + block[0].length);
                    const stop = end < 0 ? line.length : end + block[1].length;
                    push(line.slice(i, stop), block[2]);
                    if (end < 0) open = { end: block[1], cls: block[2] };
                    i = stop;
                    continue;
                }
                if (!highlightCode) {
                    push(rest, '');
                    break;
                }
                if (lineComment.some((c) => rest.startsWith(c))) {
                    push(rest, 'tok-comment');
                    break;
                }
                const ch = line[i];
                if (ch === '"' || ch === "'" || ch === '`') {
                    let j = i + 1;
                    while (j < line.length && line[j] !== ch) j += line[j] === '\\' ? 2 : 1;
                    push(line.slice(i, j + 1), 'tok-string');
                    i = j + 1;
                    previousWord = '';
                    continue;
                }
                const number = /^(?:0[xXbBoO][\da-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:[eE][+-]?\d+)?)[a-zA-Z]*/.exec(rest);
                if (number && !/[\w$]/.test(line[i - 1] || '')) {
                    push(number[0], 'tok-number');
                    i += number[0].length;
                    continue;
                }
                const word = /^[A-Za-z_$][\w$]*[?!]?/.exec(rest);
                if (word) {
                    const text = word[0];
                    const after = line.slice(i + text.length).trimStart();
                    let cls = '';
                    if (keywords.has(text)) cls = 'tok-keyword';
                    else if (DEFINERS.has(previousWord)) cls = 'tok-definition';
                    else if (after.startsWith('(')) cls = 'tok-function';
                    else if (/^[A-Z][a-z]/.test(text)) cls = 'tok-type';
                    if (line[i - 1] === '@') cls = 'tok-meta';
                    push(text, cls);
                    previousWord = text;
                    i += text.length;
                    continue;
                }
                if (ch === '@' && /[A-Za-z_]/.test(line[i + 1] || '')) {
                    push(ch, 'tok-meta');
                } else {
                    push(ch, '');
                }
                if (ch.trim() !== '') previousWord = '';
                i += 1;
            }
            return out;
        });
    }

    // ---------------------------------------------------------------- rendering

    /**
     * @param {string} tag
     * @param {string} [className]
     * @param {string} [text]
     */
    function el(tag, className, text) {
        const node = document.createElement(tag);
        if (className) node.className = className;
        if (text !== undefined) node.textContent = text;
        return node;
    }

    /** @param {string[]} actions */
    function actionButtons(actions) {
        const row = el('div', 'actions');
        for (const action of actions || []) {
            const label = ACTION_LABELS[/** @type {keyof typeof ACTION_LABELS} */ (action)];
            if (!label) continue;
            const button = /** @type {HTMLButtonElement} */ (el('button', 'action', label));
            button.type = 'button';
            button.dataset.action = action;
            button.addEventListener('click', () => vscode.postMessage({ type: 'action', action }));
            row.appendChild(button);
        }
        return row;
    }

    /**
     * @param {string} text
     * @param {{kind?: 'error' | 'empty' | 'info', hints?: string[], actions?: string[]}} [options]
     */
    function showMessage(text, options = {}) {
        results.replaceChildren();
        message.replaceChildren();
        message.className = `message ${options.kind || 'info'}`;
        message.appendChild(el('p', 'message-text', text));
        for (const hint of options.hints || []) message.appendChild(el('p', 'hint', hint));
        if (options.actions && options.actions.length) message.appendChild(actionButtons(options.actions));
        message.hidden = false;
    }

    function updateBanner() {
        const text = indexingBanner || (lastPartial ? 'indexing is running: results may be incomplete' : '');
        banner.textContent = text ? text.charAt(0).toUpperCase() + text.slice(1) : '';
        banner.hidden = !text;
    }

    /** @param {any} item */
    function renderResult(item) {
        const li = /** @type {HTMLLIElement} */ (el('li', 'result'));
        li.tabIndex = 0;
        li.dataset.uri = item.uri;
        li.setAttribute('role', 'link');
        const slash = item.path.lastIndexOf('/');
        const file = slash >= 0 ? item.path.slice(slash + 1) : item.path;
        const dir = slash >= 0 ? item.path.slice(0, slash) : '';
        li.title = `${item.path}:${item.lines}`;
        li.setAttribute('aria-label', `${item.symbol ? item.symbol + ', ' : ''}${item.path} lines ${item.lines}, score ${item.score}`);

        const head = el('div', 'result-head');
        const location = el('span', 'location');
        location.appendChild(el('span', 'file', file));
        location.appendChild(el('span', 'lines', `:${item.lines}`));
        head.appendChild(location);
        if (dir) head.appendChild(el('span', 'dir', dir));
        const score = el('span', 'score', item.score);
        score.title = 'Relevance score (higher is better)';
        head.appendChild(score);
        li.appendChild(head);

        if (item.symbol || item.kind) {
            const sub = el('div', 'result-symbol');
            if (item.kind) sub.appendChild(el('span', 'kind', item.kind));
            if (item.symbol) sub.appendChild(el('span', 'symbol', item.symbol));
            sub.appendChild(el('span', 'language', item.language));
            li.appendChild(sub);
        }

        const pre = el('pre', 'snippet');
        const code = el('code');
        tokenize(item.snippet, item.language).forEach((tokens, index) => {
            const row = el('span', 'row');
            row.appendChild(el('span', 'ln', String(item.firstLine + index)));
            const text = el('span', 'code');
            for (const token of tokens) text.appendChild(token.cls ? el('span', token.cls, token.text) : document.createTextNode(token.text));
            row.appendChild(text);
            code.appendChild(row);
        });
        pre.appendChild(code);
        li.appendChild(pre);
        if (item.moreLines > 0) li.appendChild(el('div', 'more', `+${item.moreLines} more line${item.moreLines === 1 ? '' : 's'}`));

        const open = () => {
            for (const other of results.querySelectorAll('.result.selected')) other.classList.remove('selected');
            li.classList.add('selected');
            vscode.postMessage({ type: 'open', uri: item.uri, range: item.range });
        };
        li.addEventListener('click', open);
        li.addEventListener('keydown', (event) => {
            if (event.key === 'Enter' || event.key === ' ') {
                event.preventDefault();
                open();
            } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
                event.preventDefault();
                const next = event.key === 'ArrowDown' ? li.nextElementSibling : li.previousElementSibling;
                if (next instanceof HTMLElement) next.focus();
                else if (event.key === 'ArrowUp') queryInput.focus();
            }
        });
        return li;
    }

    /** @param {any} view a message from the extension that fills the result area */
    function renderView(view) {
        progress.hidden = true;
        title.hidden = !view.title;
        title.textContent = view.title || '';
        if (view.type === 'results') {
            lastPartial = !!view.partial;
            updateBanner();
            if (!view.items.length) {
                const hints = [];
                if (view.filtered) hints.push('Try removing the file or language filter.');
                if (view.partial) hints.push('Indexing is still running, so more results may appear soon.');
                else hints.push('Try other words, or the Keyword mode for exact identifiers.');
                showMessage(view.title ? 'No similar code found.' : `No results for “${view.query}”.`, { kind: 'empty', hints });
                return;
            }
            message.hidden = true;
            message.replaceChildren();
            results.replaceChildren(...view.items.map(renderResult));
            results.setAttribute('aria-label', `${view.items.length} results`);
        } else if (view.type === 'error') {
            showMessage(view.message, { kind: 'error', actions: view.actions });
        } else {
            lastPartial = false;
            updateBanner();
            showMessage(WELCOME, { kind: 'info' });
        }
    }

    // ---------------------------------------------------------------- state and events

    function formValues() {
        return {
            query: queryInput.value,
            mode: modeSelect.value,
            include: includeInput.value,
            language: languageInput.value,
        };
    }

    function save() {
        state = { ...state, form: formValues() };
        vscode.setState(state);
    }

    function search() {
        save();
        vscode.postMessage({ type: 'search', ...formValues() });
    }

    for (const input of [queryInput, includeInput, languageInput]) input.addEventListener('input', search);
    modeSelect.addEventListener('change', search);
    form.addEventListener('submit', (event) => {
        event.preventDefault();
        search();
    });
    queryInput.addEventListener('keydown', (event) => {
        if (event.key === 'ArrowDown') {
            const first = results.querySelector('.result');
            if (first instanceof HTMLElement) {
                event.preventDefault();
                first.focus();
            }
        }
    });

    window.addEventListener('message', (event) => {
        const msg = event.data;
        if (!msg || typeof msg.type !== 'string') return;
        switch (msg.type) {
            case 'config':
                if (!state.form) modeSelect.value = msg.mode;
                break;
            case 'focus':
                if (typeof msg.query === 'string' && msg.query) {
                    queryInput.value = msg.query;
                    search();
                }
                queryInput.focus();
                queryInput.select();
                break;
            case 'searching':
                progress.hidden = false;
                if (msg.title) {
                    title.textContent = msg.title;
                    title.hidden = false;
                }
                break;
            case 'results':
            case 'error':
            case 'cleared':
                state = { ...state, view: msg };
                vscode.setState(state);
                renderView(msg);
                break;
            case 'server':
                serverNotice.replaceChildren();
                serverNotice.hidden = msg.state === 'running';
                serverNotice.className = `notice ${msg.state}`;
                if (msg.state !== 'running') {
                    serverNotice.appendChild(el('p', 'message-text', msg.message || ''));
                    if (msg.actions && msg.actions.length) serverNotice.appendChild(actionButtons(msg.actions));
                }
                break;
            case 'indexing':
                indexingBanner = msg.banner || '';
                updateBanner();
                break;
        }
    });

    // Restore what the view showed before it was hidden or reloaded.
    if (state.form) {
        queryInput.value = state.form.query || '';
        modeSelect.value = state.form.mode || 'hybrid';
        includeInput.value = state.form.include || '';
        languageInput.value = state.form.language || '';
    }
    renderView(state.view || { type: 'cleared' });
    vscode.postMessage({ type: 'ready' });
    queryInput.focus();
})();
