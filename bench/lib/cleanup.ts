/** A stack of undo steps (stop a process, remove a temp dir), run last-in first-out, also on failure. */
export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<void> | void }[] = [];
  private running: Promise<string[]> | null = null;

  defer(what: string, fn: () => Promise<void> | void): void {
    this.steps.push({ what, fn });
  }

  /** Runs every step once, even if some fail; resolves with the failures as messages. Idempotent. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      const errors: string[] = [];
      for (let step = this.steps.pop(); step; step = this.steps.pop()) {
        try {
          await step.fn();
        } catch (err) {
          errors.push(`${step.what}: ${(err as Error).message}`);
        }
      }
      return errors;
    })();
    return this.running;
  }
}
