import { compilePattern, type Matcher } from '../protocol/pattern.js';

export { compilePattern, type Matcher };

/** Routes are tried in configuration order; the first match wins (patterns: protocol/pattern.ts). */
export class Router<H> {
  private readonly routes: { match: Matcher; handler: H }[];
  constructor(routes: { match: string; handler: H }[]) {
    this.routes = routes.map((r) => ({ match: compilePattern(r.match), handler: r.handler }));
  }
  route(target: string): H | undefined {
    return this.routes.find((r) => r.match(target))?.handler;
  }
}
