#!/usr/bin/env node
// Merges a Parley permission template into an existing settings file without losing anything:
// arrays become their union (existing entries first), objects merge key by key, and an
// existing scalar always wins. A .bak copy of the file as it was before the first merge is
// written once and kept: a later run (an upgrade) never overwrites it with an already-merged file.
// usage: node merge.mjs TEMPLATE.json TARGET.json
import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

const [template, target] = process.argv.slice(2);
if (!template || !target) {
  console.log('USAGE_ERROR\nDETAIL: node merge.mjs TEMPLATE.json TARGET.json');
  process.exit(1);
}

const read = (file) => {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    console.log(`BAD_JSON\nDETAIL: ${file}: ${e.message}`);
    process.exit(1);
  }
};

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
function merge(mine, theirs) {
  if (Array.isArray(mine) && Array.isArray(theirs)) return [...mine, ...theirs.filter((t) => !mine.some((m) => JSON.stringify(m) === JSON.stringify(t)))];
  if (isObject(mine) && isObject(theirs)) {
    const out = { ...mine };
    for (const [k, v] of Object.entries(theirs)) out[k] = k in mine ? merge(mine[k], v) : v;
    return out;
  }
  return mine;
}

const existing = existsSync(target) ? read(target) : {};
if (!isObject(existing)) {
  console.log(`BAD_JSON\nDETAIL: ${target} is not a JSON object`);
  process.exit(1);
}
const merged = merge(existing, read(template));
if (existsSync(target) && !existsSync(`${target}.bak`)) copyFileSync(target, `${target}.bak`);
writeFileSync(`${target}.tmp`, `${JSON.stringify(merged, null, 2)}\n`);
renameSync(`${target}.tmp`, target);
console.log(`MERGED ${target}`);
