/**
 * Tests that need something from the system (Chromium, the repository's Python server): they run when it is
 * there; in CI (CI=true) a missing one fails the run; elsewhere they skip with one line saying how to enable
 * them. The line is also kept in the tests' `meta.skipReason`, which the JSON reporter writes, so that
 * scripts/summary.mjs can repeat it above the closing line of scripts/test.sh.
 */

declare module '@vitest/runner' {
    interface TaskMeta {
        /** Why the test did not run and how to make it run. */
        skipReason?: string;
    }
}

/** True when running in CI: `CI=true` (or `1`), as GitHub Actions, GitLab CI and most runners set it. */
export function isCI(env: NodeJS.ProcessEnv = process.env): boolean {
    return /^(true|1)$/i.test(env.CI?.trim() ?? '');
}

/**
 * Undefined when the requirement is met. Otherwise throws in CI, and elsewhere prints and returns the skip line.
 * @param missing what is missing, e.g. "no Chromium at /usr/bin/chromium".
 * @param enable how to get it, e.g. "apt-get install chromium".
 */
export function skipUnless(found: boolean, test: string, missing: string, enable: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
    if (found) {
        return undefined;
    }
    if (isCI(env)) {
        throw new Error(`Cannot run ${test}: ${missing}. CI=true, so this is an error, not a skip; to fix: ${enable}.`);
    }
    const line = `Skipped ${test}: ${missing}. To run it: ${enable}.`;
    console.warn(line);
    return line;
}
