/**
 * The webview's HTML: media/panel.html with its placeholders filled. Pure.
 */
import { randomBytes } from 'node:crypto';

export interface HtmlVars {
    /** The webview's `cspSource`. */
    cspSource: string;
    nonce: string;
    scriptUri: string;
    styleUri: string;
}

export function makeNonce(): string {
    return randomBytes(16).toString('base64').replace(/[^A-Za-z0-9]/g, '');
}

function escapeAttribute(value: string): string {
    return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Fills `{{name}}` placeholders; throws on an unknown one so a template typo cannot ship. */
export function renderHtml(template: string, vars: HtmlVars): string {
    return template.replace(/\{\{(\w+)\}\}/g, (_m, name: string) => {
        if (!(name in vars)) {
            throw new Error(`panel.html: unknown placeholder {{${name}}}`);
        }
        return escapeAttribute(vars[name as keyof HtmlVars]);
    });
}
