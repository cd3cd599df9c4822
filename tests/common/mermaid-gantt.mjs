//! Parses every ```mermaid block of a markdown document (stdin) with Mermaid's own parser (the
//! npm package, in a jsdom window: Mermaid sanitizes text with DOMPurify, which needs a DOM) and
//! prints, per block, its diagram type and, for a gantt, each task as Mermaid computed it
//! (section, name, start and end in ms, tags). A block Mermaid rejects exits 1 with its error.
// Usage: node mermaid-gantt.mjs NPM_DIR < summary.md
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const npm = process.argv[2];
const mod = (p) => pathToFileURL(join(npm, 'node_modules', p)).href;
const { JSDOM } = await import(mod('jsdom/lib/api.js'));
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import(mod('mermaid/dist/mermaid.core.mjs'));
mermaid.initialize({ startOnLoad: false });

const md = readFileSync(0, 'utf8');
const blocks = [...md.matchAll(/^```mermaid\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
const out = [];
for (const text of blocks) {
  try {
    const { diagramType } = await mermaid.parse(text);
    const block = { type: diagramType, tasks: [] };
    if (diagramType === 'gantt') {
      const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
      block.title = diagram.db.getDiagramTitle();
      for (const t of diagram.db.getTasks()) {
        const start = t.startTime.valueOf();
        const end = t.endTime.valueOf();
        if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) {
          throw new Error(`task ${JSON.stringify(t.task)}: invalid times ${t.startTime} – ${t.endTime}`);
        }
        block.tasks.push({
          section: t.section, name: t.task, start, end,
          done: !!t.done, crit: !!t.crit, active: !!t.active, milestone: !!t.milestone,
        });
      }
    }
    out.push(block);
  } catch (e) {
    console.error(`Mermaid rejected the block:\n${text}\n${e && e.message ? e.message : e}`);
    process.exit(1);
  }
}
console.log(JSON.stringify(out));
