/**
 * The loop detector's behaviour by kind of conversation. Every transcript is generated here
 * from small templates (none is copied from the corpus), replayed turn by turn, alternating
 * host and joiner unless a turn says otherwise.
 */
import { describe, expect, it } from 'vitest';
import { createLoopDetector, type LoopAlarm } from '../src/loop-detector.js';

type Turn = string | { from: 0 | 1; text: string };

/** Replays turns; returns the index of the first alarm (or null) and the alarm itself. */
function replay(turns: Turn[], detector = createLoopDetector()): { at: number | null; alarm: LoopAlarm | null } {
  for (let i = 0; i < turns.length; i++) {
    const t = turns[i];
    const { from, text } = typeof t === 'string' ? { from: (i % 2) as 0 | 1, text: t } : t;
    const alarm = detector.observe(from, text, 'OVER');
    if (alarm) return { at: i, alarm };
  }
  return { at: null, alarm: null };
}

/** Deterministic variety. */
function pick<T>(xs: T[], i: number, salt = 0): T {
  return xs[(i * 7 + salt * 13 + ((i * i) % 5)) % xs.length];
}

/** A productive opening: each turn carries new identifiers and numbers. */
function productive(n: number, topic = 'billing'): string[] {
  return Array.from({ length: n }, (_, i) =>
    i % 2 === 0
      ? `Patched \`${topic}/handler_${i}.py\` to retry on 503; ${12 + i * 7} tests pass, p95 now ${140 - i * 9}ms.`
      : `Checked on staging-${i}: the \`${topic}_queue_${i}\` lag dropped from ${900 + i * 31} to ${40 + i} messages.`,
  );
}

/** Expect an alarm inside the loop (not before it) and within `maxDelay` turns of its start. */
function expectCaught(turns: Turn[], loopFrom: number, maxDelay = 8, detector = createLoopDetector()): LoopAlarm {
  const { at, alarm } = replay(turns, detector);
  expect(at, 'an alarm').not.toBeNull();
  expect(at!).toBeGreaterThanOrEqual(loopFrom);
  expect(at! - loopFrom).toBeLessThanOrEqual(maxDelay);
  return alarm!;
}

describe('loops it catches', () => {
  it('an alternating thank-you volley whose wording drifts every turn', () => {
    const open = ['Thanks', 'Thank you', 'Many thanks', 'Much appreciated', 'Cheers', 'Really appreciate it'];
    const why = ['for the quick fix', 'for digging into this', 'for the careful review', 'for your patience', 'for jumping on it', 'for the help today'];
    const close = ['!', ', great working with you!', ' — you too!', ', truly.', ' 🙏', ', likewise!'];
    const loop = Array.from({ length: 14 }, (_, i) => `${pick(open, i)} ${pick(why, i, 1)}${pick(close, i, 2)}`);
    expectCaught([...productive(6), ...loop], 6);
  });

  it('long near-duplicate recaps of 1,000+ characters, re-posted with new headers', () => {
    const facts = [
      'Root cause: the `ledger_sync` job summed amounts in two currencies after column `currency_code` appeared on 2024-06-03.',
      'Fix: group by `currency_code` and convert through `fx_rates_filled`, merged as commit `9f31c2d`.',
      'Backfill: 14/14 daily runs re-executed, 221,904 rows rewritten, data-quality checks green.',
      'Monitoring: alert `ledger_sum_drift` fires if the daily total moves more than 5% week over week.',
      'Rollback: restore snapshot `ledger-2024-06-02` and re-run `make ledger-backfill FROM=2024-06-03`.',
      'Owners: data platform for the job, finance engineering for the FX table, on-call rota unchanged.',
      'Docs: runbook section 4.2 updated with the new currency handling and a worked example.',
      'Follow-up: ticket DATA-3312 to drop the deprecated `amount_raw` column after 30 days.',
    ];
    const headers = ['Recap so we agree', 'Confirming the final state', 'Summary once more for the record', 'Final version, unchanged', 'Restating it for completeness', 'Same summary from my side', 'Final recap (confirmed)', 'For the thread, the summary again'];
    const recap = (i: number) => {
      const lines = facts.map((f, k) => `${k + 1}. ${f} (checked by both of us, nothing left open here)`);
      if (i % 2) lines.reverse(); // each side lists it in its own order
      return `${pick(headers, i)}:\n\n${lines.join('\n')}\n\nAgreed on all points.`;
    };
    const loop = Array.from({ length: 12 }, (_, i) => recap(i));
    expect(loop.every((m) => m.length >= 1000)).toBe(true);
    expectCaught([...productive(6, 'ledger'), ...loop], 6);
  });

  it('a pleasantry loop in a non-Latin script (Japanese)', () => {
    const work = [
      '`orders` テーブルに `idx_orders_created_at` を追加しました。クエリは 1.8秒 → 120ms です。',
      '確認しました。ステージングで p95 が 140ms、エラーは 0 件です。',
      'マイグレーション `0042_add_index` を本番に適用しました（所要 3分12秒）。',
      '本番でも p95 が 150ms に下がりました。ダッシュボードを更新済みです。',
    ];
    const polite = ['ありがとうございました！', 'こちらこそありがとうございます。', 'お疲れ様でした。', 'お疲れ様です！助かりました。', 'いえいえ、こちらこそ助かりました。', '本当にありがとうございます🙏', 'どういたしまして。', 'またよろしくお願いします。', 'こちらこそ、よろしくお願いいたします。', 'ありがとうございます！お疲れ様でした。', 'はい、よろしくお願いします！', 'お疲れ様でした！'];
    expectCaught([...work, ...polite], 4);
  });

  it('emoji-only reactions traded back and forth', () => {
    const emoji = ['👍', '🙏', '✅', '🎉🎉', '🙌', '👌', '🚀🚀', '💯', '✅✅', '🙏🙏', '👍👍', '🥳'];
    expectCaught([...productive(4), ...emoji], 4);
  });

  it('status polls answered with the same pasted output', () => {
    const table = (age: number) => `\`\`\`\n$ kubectl get certificate web-tls -n shop\nNAME      READY   SECRET    AGE\nweb-tls   False   web-tls   ${age}m\n\`\`\`\nStill not ready.`;
    const polls = ['Any update?', 'Is it ready now?', 'Ok. Check again?', 'Anything new?', 'Ready yet?', 'Still nothing?', 'Any change?'];
    const loop = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? pick(polls, i) : table(5 + i)));
    expectCaught([...productive(4, 'certs'), ...loop], 4);
  });

  it('status polls in plain words, answered with "still running" in ever-new wording', () => {
    const polls = ['Any news?', 'How is it looking?', 'Any progress yet?', 'Update?', 'Anything new on it?', 'Done yet?', 'Status?'];
    const answers = ['Still going.', 'Nothing yet, still on it.', 'It continues, no change.', 'Still the same.', 'Not yet, still running.', 'Unchanged, still waiting.', 'Still pending.'];
    const loop = polls.flatMap((p, i) => [p, answers[i]]);
    expectCaught([...productive(2), 'Kicked off the reindex job.', 'Thanks, it usually takes a while.', ...loop], 4);
  });

  it('radio-style sign-offs that never end', () => {
    const bye = ['Closing out on my side.', 'Closing here too. Over and out.', 'Out. Signing off.', 'Signing off as well.', 'Logging off now.', 'Logged off. Out.', 'Disconnecting. Bye.', 'Bye, disconnecting too.', 'Signing off for real.', 'Out.'];
    expectCaught([...productive(4), ...bye], 4);
  });

  it('a goodbye volley in a language the social word list does not cover (Greek)', () => {
    // The core is novelty, not keywords: once the same few words keep coming back, it fires.
    const bye = ['Ευχαριστώ πολύ!', 'Κι εγώ ευχαριστώ!', 'Τα λέμε σύντομα!', 'Ευχαριστώ, τα λέμε!', 'Καλή συνέχεια!', 'Καλή συνέχεια, ευχαριστώ!', 'Τα λέμε!', 'Ευχαριστώ και πάλι!', 'Καλή συνέχεια και πάλι!', 'Τα λέμε, ευχαριστώ πολύ!', 'Ευχαριστώ!', 'Καλή συνέχεια!'];
    expectCaught([...productive(4), ...bye], 4);
  });

  it('status polls whose only changes are the clock, the elapsed time, a poll counter and the same share written another way', () => {
    const work = [
      'Started the reindex of `orders_v7` on cluster es-3: task `r7:5521`, 38,400,000 docs to copy.',
      'It stopped at 24,960,000 / 38,400,000 (65%): node es-3-data-2 is over the disk watermark. Storage team ticket STO-812, they start at 15:00.',
      'Nothing for us to do until they free the disk; the task resumes by itself.',
    ];
    const loop = [
      'Poll 1 at 13:05: still 65%.',
      'Poll 2 at 13:09, waited 4 min: 65 percent, no change.',
      '13:14 — poll 3: 24,960,000 of 38,400,000 copied.',
      'Poll 4: sixty-five percent, 12 minutes stuck.',
      '13:22, poll 5: 0.65 done, task `r7:5521` unchanged.',
      'Poll 6 (13:26): 65%. Stuck for 21 min now.',
      'At 13:31 it is 24.96M of 38.4M, the same.',
      'Poll 8, 13:35: still at 65/100.',
      '13:40: 65%, poll 9, 35 minutes.',
      'Poll 10 at 13:44: sixty-five percent.',
      '13:49 still 65%, STO-812 open.',
    ];
    expectCaught([...work, ...loop], 3);
  });

  it('settled figures restated in new forms: words for digits, rounding, fractions for percentages, other units', () => {
    const work = [
      'Load test on `checkout-api` v4.2 done: 1,250 req/s sustained, p95 180ms (was 300ms), 0 errors in 450,000 requests.',
      'Compared with v4.1 on the same profile (`k6/checkout.js`, 20 min ramp): the gain is the connection pool, commit `7c1d2e9`.',
      'Merged as PR #5120, deployed to production at 10:40; the dashboard shows p95 182ms there.',
    ];
    const loop = [
      'So p95 went from 300ms to 180ms.',
      'Right, three hundred milliseconds down to one hundred eighty.',
      'In seconds: 0.3 s → 0.18 s.',
      'That is 180/300 of the old latency, a 40% cut.',
      'Yes, forty percent faster at p95.',
      'And 1,250 requests per second, about 1.25k rps.',
      'Zero errors out of 450,000, i.e. 0%.',
      'p95 is 60% of what it was.',
      'Exactly: 0.18 instead of 0.30 seconds.',
      'Twelve hundred fifty rps, zero errors, 180 ms.',
      'All settled: 1,250 rps, p95 0.18 s, 0 errors.',
    ];
    expectCaught([...work, ...loop], 3);
  });

  it('a paraphrase loop in a language no list covers (Finnish), with the formula lists switched off', () => {
    const work = [
      'Palvelu `laskutus-api` kaatuu käynnistyksessä: `KeyError: DATABASE_URL` tiedostossa `settings.py` rivillä 41.',
      'Ympäristömuuttuja puuttuu, koska `values-prod.yaml` nimettiin uudelleen versiossa 2.7.0. Lisäsin sen takaisin, commit `c4e9a17`.',
      'Asensin uudelleen: `helm upgrade laskutus ./chart` onnistui, 3/3 podia valmiina, virheitä 0 viimeisen 15 minuutin aikana.',
      'Hyvä. Lisäsin testin `test_settings_env`, joka tarkistaa muuttujan, PR #318 yhdistetty.',
    ];
    const loop = [
      'Eli toisin sanoen ympäristömuuttuja puuttui ja palvelu kaatui sen takia.',
      'Kyllä, eli ongelma oli puuttuva muuttuja uudelleennimetyn tiedoston takia.',
      'Aivan, lyhyesti sanottuna tiedoston nimi muuttui ja muuttuja katosi.',
      'Juuri niin, muuttuja katosi ja palvelu ei käynnistynyt.',
      'Toisin sanoen korjaus oli lisätä muuttuja takaisin.',
      'Kyllä, lisäsimme muuttujan takaisin ja palvelu käynnistyi.',
      'Eli nyt palvelu toimii ja testi varmistaa muuttujan.',
      'Aivan, testi varmistaa ettei muuttuja katoa uudelleen.',
      'Lyhyesti: tiedosto nimettiin, muuttuja katosi, lisäsimme sen, testi suojaa.',
      'Juuri näin, koko ongelma ja ratkaisu lyhyesti.',
      'Toisin sanoen kaikki on nyt kunnossa.',
    ];
    expectCaught([...work, ...loop], 4, 8, createLoopDetector({ formulas: false }));
  });

  it('a config re-pasted as "final" with only whitespace, comments, key order, quoting and case changed', () => {
    const keys = ['replicas: 3', 'image: "registry.local/search:5.1.2"', 'memory: 2Gi', 'cpu: 500m', 'port: 8080', 'probe_path: /healthz'];
    const paste = (i: number) => {
      const lines = i % 2 ? [...keys].reverse() : [...keys];
      const body = lines.map((l) => (i % 3 === 1 ? l.replace(/"/g, "'") : i % 3 === 2 ? l.replace(/"/g, '') : l)).map((l) => `${' '.repeat(2 + (i % 2) * 2)}${l}`);
      const comment = pick(['# final values', '# agreed in review', '# do not change', '// same as merged', '# tidy'], i);
      return `${pick(['Final version:', 'Final, reordered:', 'FINAL (same content):', 'Final with a comment:', 'Final final:'], i)}\n\`\`\`yaml\n${comment}\nsearch:\n${body.join('\n')}\n\`\`\``;
    };
    const work = [
      'The `search` deployment OOMs at 1Gi; heap dumps show 1.6G peak during reindex. Proposal: 2Gi and 3 replicas.',
      `Agreed. Values:\n\`\`\`yaml\nsearch:\n${keys.map((k) => `  ${k}`).join('\n')}\n\`\`\``,
      'Applied with `helm upgrade search ./charts/search` (revision 14); no restarts in 2h, peak memory 1.7G.',
      'Merged as PR #2231.',
    ];
    expectCaught([...work, ...Array.from({ length: 11 }, (_, i) => paste(i))], 4);
  });

  it('long praise in ever-new words after the work is done', () => {
    const openers = ['I have to say', 'Honestly', 'Truly', 'I keep thinking that', 'It is worth saying that', 'Looking back,', 'Let me add that', 'I really feel that'];
    const praise = [
      'your patience with the tricky parts made the whole afternoon feel calm and focused',
      'the way you broke the problem into small steps was a joy to follow from start to finish',
      'working alongside someone so generous with explanations is a rare pleasure',
      'your careful questions turned a messy investigation into an orderly one',
      'every suggestion you made landed at exactly the right moment',
      'this was the kind of collaboration one hopes for and seldom gets',
      'your steady humour kept the energy up through the slow stretches',
      'the clarity of your reasoning lifted the quality of everything we touched',
      'I learned a great deal simply by watching how you approach a puzzle',
      'the trust between us let both of us move quickly without second-guessing',
    ];
    const closers = ['Thank you for that.', 'It meant a lot.', 'I will remember this session.', 'What a wonderful partnership.', 'I am grateful, truly.'];
    const loop = Array.from({ length: 12 }, (_, i) => `${pick(openers, i)} ${pick(praise, i, 1)}, and ${pick(praise, i + 3, 2)}. ${pick(closers, i, 3)}`);
    expectCaught([...productive(4, 'notify'), ...loop], 4);
  });

  it('reruns after the decision that keep giving the same result', () => {
    const runs = [
      'Reran `pytest -q tests/api`: 412 passed.',
      'Same here, 412 passed.',
      'Ran it again with `-p no:cacheprovider`: 412 passed, no change.',
      'Rerun #2 on my side: all 412 green.',
      'Once more from a clean venv: 412 passed.',
      'Rerun #3: identical, 412 passed.',
      'CI rerun (job 88123): green, 412 tests.',
      'Locally again: 412 passed.',
      'Another one, still 412 passed.',
      'Rerun #4: 412/412.',
      'Still green, 412 passed.',
    ];
    const work = [
      'Flaky `test_refund_race` fixed by locking the ledger row (`SELECT … FOR UPDATE`), commit `a91f0c3`.',
      '`pytest -q tests/api` → 412 passed in 48.2s; the race test passed 300/300 in a loop.',
      'Merged PR #877; closing FLAKY-42.',
    ];
    expectCaught([...work, ...runs], 3);
  });

  it('a finished checklist posted and ticked again', () => {
    const items = ['backups verified', 'migrations applied', 'feature flags set', 'dashboards updated', 'on-call informed', 'release notes published'];
    const tick = (i: number) =>
      `${pick(['Checklist again:', 'Re-ticking:', 'Final check:', 'Going over it once more:', 'All items:'], i)}\n${items
        .slice(i % 2)
        .map((it) => `${pick(['- [x]', '✅', '☑️', '🟢'], i)} ${it}`)
        .join('\n')}`;
    const work = [
      'Release 9.4 checklist: backups verified (snapshot `db-2024-11-02`), migrations applied (`0188`, `0189`), flags set (`new_cart=on`).',
      'Dashboards updated (`release-9.4` board), on-call informed (@dana), release notes published at /changelog#9.4.',
    ];
    expectCaught([...work, ...Array.from({ length: 12 }, (_, i) => tick(i))], 2);
  });

  it('an "after you" deadlock over who goes first', () => {
    const turns = [
      'My migration for `accounts` is ready (`0042_add_region`), dry run clean: 3 tables, 0 locks over 2s.',
      'Mine for `billing` too (`0107_split_tax`), dry run 1.4s. Both need the single deploy slot on `db-prod-1`.',
      'The slot is free right now (`deployctl status` → idle).',
      'You go first.',
      'No, please, you go first.',
      'I can wait, go ahead.',
      'I would rather wait for you. Go ahead.',
      'After you.',
      'No, after you, really.',
      'I am not touching the slot until you are done.',
      'And I am not touching it until you are done.',
      'Your move.',
      'Your move, honestly.',
      'Waiting for your signal.',
      'Waiting for yours.',
    ];
    expectCaught(turns, 3);
  });
});

describe('productive look-alikes it leaves alone', () => {
  it('terse code review: short findings and one-word fixes', () => {
    const files = ['router.go', 'cache.go', 'auth.go', 'pool.go', 'main.go', 'retry.go'];
    const review: string[] = ['PR #412 ready: adds `/readyz` and a connection-pool check. 4 files, +120 −8.'];
    files.forEach((f, i) => {
      review.push(i % 3 === 2 ? `nit: \`${f}:${20 + i * 11}\` — rename \`doThing${i}\` → \`check${i}\`.` : `\`${f}:${20 + i * 11}\` — missing timeout on call ${i}?`);
      review.push(pick(['Fixed.', 'Done.', 'Renamed.', 'Added.', 'done', 'Changed.'], i));
    });
    review.push('LGTM.', 'Merging.');
    expect(replay(review).at).toBeNull();
  });

  it('rapid Q&A with distinct short answers', () => {
    const qa = [
      ['Rows?', '1,982,114.'],
      ['Classes?', '5: bug, feature, question, docs, other.'],
      ['Smallest class?', '`docs`, 2.3%.'],
      ['Missing labels?', '4,410 (0.22%).'],
      ['Duplicates?', '12,907 by hash.'],
      ['Languages?', 'en 81%, pt 8%, ja 6%, other 5%.'],
      ['Median length?', '143 tokens, p95 690.'],
      ['Date range?', '2022-02-01 to 2024-07-31.'],
      ['Which region?', 'eu-central-1.'],
    ].flat();
    expect(replay(['Before training: a few facts about the ticket dataset please.', ...qa]).at).toBeNull();
  });

  it('command/output debugging with short outputs', () => {
    const steps = [
      'Service fails on your box. Run `python -m app --check`?',
      '```\nModuleNotFoundError: No module named yaml_loader\n```',
      '`pip show pyyaml | head -2`?',
      '```\nName: PyYAML\nVersion: 6.0.1\n```',
      '`grep -n yaml requirements.txt`',
      '`17:pyyaml==6.0.1`',
      'The module is `yaml_loader` in `src/`. `ls src/`?',
      '`app  config  yaml_loader.py.bak`',
      'Renamed by the last merge. `git log --oneline -1 -- src/yaml_loader.py`',
      '`4e1a9c0 move loader into config/`',
      'Then the import in `app/main.py:3` is stale. Change it to `config.yaml_loader`.',
      'Done. `python -m app --check` → exit 0.',
      '`pytest -q`',
      '`212 passed in 9.81s`',
    ];
    expect(replay(steps).at).toBeNull();
  });

  it('progress reports whose numbers change, with "ok"/"next" acks in between', () => {
    const svcs = ['edge', 'auth', 'search', 'cart', 'orders', 'payments', 'mailer', 'admin', 'reports', 'audit', 'billing', 'export'];
    const turns: string[] = ['Migrate the 12 services to the new cluster one by one and report each.'];
    svcs.forEach((s, i) => {
      turns.push(`${i + 1}/12 \`${s}-api\`: ${2 + (i % 4)}/${2 + (i % 4)} ready, p99 ${60 + i * 13}ms (old ${58 + i * 11}ms), 5xx 0.0${i}%.`);
      turns.push(pick(['ok', 'next', 'ok', 'next', 'continue'], i));
    });
    expect(replay(turns).at).toBeNull();
  });

  it('plain-language Q&A with no numbers at all: every question asks something new', () => {
    const qa = [
      ['Which cloud do we deploy on?', 'Google Cloud, mostly.'],
      ['Who owns the billing service?', "Maria's team."],
      ['Where do incidents get reported?', 'The on-call channel in Slack.'],
      ['Do we squash merge?', 'Yes, always squash.'],
      ['Who approves production deploys?', 'Any senior engineer on the rota.'],
      ['Is there a staging environment?', 'Yes, refreshed nightly.'],
      ['How are secrets stored?', 'In the vault, never in repositories.'],
    ].flat();
    expect(replay(['Some onboarding questions, ok?', 'Sure, go ahead.', ...qa]).at).toBeNull();
  });

  it('plain-language incident triage with one-word questions and short answers', () => {
    const triage = ['Checkout fails for some users.', 'Which region?', 'Europe only, it seems.', 'Is the load balancer healthy?', 'Health checks pass.', 'DNS?', 'Resolving fine from here.', 'Certificates?', 'Expired this morning on the European edge!', 'Renewing now.', 'Confirmed working again.', 'Writing the postmortem.'];
    expect(replay(triage).at).toBeNull();
  });

  it('identical polls answered with progress in words, not numbers', () => {
    const steps = ['Compiling the backend now.', 'Backend compiled, bundling the frontend.', 'Bundling finished, running the test suite.', 'Tests green, uploading artifacts.', 'Artifacts uploaded, promoting the release.', 'Release promoted, smoke tests running.'];
    expect(replay(['Release build started.', ...steps.flatMap((s) => ['Any update?', s])]).at).toBeNull();
  });

  it('identical polls while every answer reports new CI progress', () => {
    const turns: string[] = ['Pushed the fix as PR #733; can you watch CI?'];
    for (let i = 0; i < 8; i++) turns.push('Any update?', `unit ${(i + 1) * 60}/480 ✓, integration ${i * 12}/96, job ${55120 + i}.`);
    expect(replay(turns).at).toBeNull();
  });

  it('a single polite closing exchange after the work', () => {
    const turns = [...productive(8), 'Thanks, that is everything from my side.', 'Great, thanks — closing this out.'];
    expect(replay(turns).at).toBeNull();
  });

  it('thanks at the start of every message that still carries a new fix', () => {
    const turns = Array.from({ length: 12 }, (_, i) => `${pick(['Thanks!', 'Thank you —', 'Much appreciated.', 'Thanks a lot.'], i)} Fixed ${i + 2} more in \`Screen${i}.kt\`: contrast ${(3 + i * 0.3).toFixed(1)}:1 → 4.5:1.`);
    expect(replay(turns).at).toBeNull();
  });

  it('a long recap revised twice, each revision carrying new facts from the other side', () => {
    const base = [
      'Model `ranker-v5` on 4 × A10G replicas behind the `rank-gw` gateway.',
      'Canary at 5% for 24h, then 25%, 50%, 100% with a 6h hold at each step.',
      'Rollback: flip `ranker_version` back to v4 in the feature store; under 2 minutes.',
      'Dashboards: latency, NDCG@10 online proxy, GPU utilisation, error rate.',
      'Alerting: page if p95 exceeds the budget for 10 minutes or errors exceed 0.5%.',
      'Owners: ML platform for serving, search team for quality sign-off.',
    ];
    const plan = (v: number, extra: string[]) =>
      `Deployment plan (v${v}):\n\n${[...base, ...extra].map((l, k) => `${k + 1}. ${l}`).join('\n')}\n\nPlease check before the review.`;
    const turns = [
      plan(1, ['Latency budget: p95 120 ms per request.']),
      'Correction: 120 ms was batch 8 amortised; batch 1 is 210 ms p95 on the A10G, over budget.',
      plan(2, ['Latency budget: p95 210 ms at batch 1, so serve at batch 4 with a 15 ms queue window (p95 168 ms).']),
      'INT8 is out: NDCG@10 dropped 0.9 points, over the 0.5 tolerance. Need 6 replicas at fp16 instead.',
      plan(3, ['Latency budget: p95 168 ms at batch 4.', 'Capacity: 6 × A10G at fp16 (INT8 rejected, −0.9 NDCG), cost +$2,900/month.']),
      'v3 is correct. Filing it as the decision record.',
    ];
    expect(replay(turns).at).toBeNull();
  });

  it('a bisect made of one-word turns and build numbers', () => {
    const turns = ['Render time doubled between nightly 3100 and 3164. I pick builds, you run `bench.sh` and answer good/bad.', 'ok'];
    const builds = [3132, 3116, 3124, 3128, 3126, 3127];
    const verdicts = ['bad', 'good', 'good', 'bad', 'good', 'bad'];
    builds.forEach((b, i) => turns.push(`${b}?`, verdicts[i]));
    turns.push('So 3127 is the first bad build: commit `e41c0d2` "inline fonts".', 'Confirmed: reverting `e41c0d2` on 3127 gives 210ms again.');
    expect(replay(turns).at).toBeNull();
  });

  it('a bisect over commit hashes with one-word verdicts', () => {
    const hashes = ['c02d8f4', '9b3e511', 'e1f0a6c', 'e6a0c72', '17f4d9a', '2d8b0e4', 'a83c2e0', '6c1e7f2'];
    const turns = ['Search returns 500 on emoji queries since v3.2; bisecting between v3.1.0 and v3.2.0. You run `repro.sh`.'];
    hashes.forEach((h, i) => turns.push(`\`${h}\``, pick(['good', 'bad', 'bad', 'good', 'skip'], i)));
    turns.push('First bad commit is `2d8b0e4`: byte slicing of the query.', 'Fix pushed as `f3b27a6`; repro passes.');
    expect(replay(turns).at).toBeNull();
  });

  it('a checklist walked through item by item, each item with its own value', () => {
    const items: [string, string][] = [
      ['Backup taken?', 'Yes: snapshot `pg-main-1104`, 212 GB, finished 02:14.'],
      ['Replication lag?', '0.4s on both replicas.'],
      ['Disk headroom?', '38% free on `data-1`, 41% on `data-2`.'],
      ['Migrations pending?', 'Two: `0231_add_index` and `0232_backfill_flags`.'],
      ['Feature flag state?', '`new_search` off, `bulk_export` at 10%.'],
      ['Error budget?', '71% left this month.'],
      ['On-call?', '@mira primary, @tom secondary.'],
      ['Rollback plan?', 'Revert to image `api:8.14.2`; takes about 4 minutes.'],
    ];
    expect(replay(['Pre-deploy checklist for 8.15, item by item.', 'Ready.', ...items.flat(), 'All green, deploying.']).at).toBeNull();
  });

  it('polls whose answers really move, while the clock and poll counter tick as well', () => {
    const turns = ['Upload of the 42 GB model to the 4 regions started at 09:00.'];
    const pct = [12, 27, 41, 58, 70, 83, 95, 100];
    pct.forEach((p, i) => turns.push(pick(['Any update?', 'Status?', '?', 'And now?'], i), `Poll ${i + 1}, 09:${String(5 + i * 4).padStart(2, '0')}: ${p}% uploaded${i === 3 ? ', eu region done' : ''}.`));
    turns.push('All 4 regions verified, checksum `sha256:77ab…` matches.');
    expect(replay(turns).at).toBeNull();
  });

  it('tuning with small real changes, each followed by a new measurement', () => {
    const steps: string[] = ['Tuning the dedup threshold on the ticket corpus; baseline at 0.80: precision 0.970, recall 0.570.'];
    const settings = [0.78, 0.76, 0.75, 0.74, 0.73, 0.72];
    settings.forEach((t, i) => {
      steps.push(pick(['Try', 'Next:', 'Lower to', 'Now'], i) + ` ${t.toFixed(2)}?`);
      steps.push(`At ${t.toFixed(2)}: precision ${(0.965 - i * 0.006).toFixed(3)}, recall ${(0.61 + i * 0.043).toFixed(3)}, ${(18400 + i * 2150).toLocaleString('en')} pairs.`);
    });
    steps.push('0.74 it is; committed to `dedup/config.yaml`.');
    expect(replay(steps).at).toBeNull();
  });

  it('terse review in a language no list covers (Finnish), with the formula lists switched off', () => {
    const turns = [
      'PR #512 valmis: lisää välimuistin `HintaCache` ja 4 testiä.',
      '`cache.py:33` — puuttuuko aikakatkaisu?',
      'Lisätty, 5 sekuntia.',
      '`cache.py:58` — avain ei sisällä valuuttaa.',
      'Korjattu, avain on nyt `(tuote_id, valuutta)`.',
      'Testi `test_hinta_vanhenee` epäonnistuu paikallisesti.',
      'Kellon vuoksi; käytän nyt `freezegun`ia, commit `9d0e1f2`.',
      'Toimii. Yksi pieni: nimeä `hae` → `hae_hinta`.',
      'Nimetty uudelleen.',
      'Hyväksytty ✅',
      'Yhdistetty.',
    ];
    expect(replay(turns, createLoopDetector({ formulas: false })).at).toBeNull();
  });

  it('a design discussion in plain words after a technical start: every message a fresh argument', () => {
    const turns = [
      'Queue lag on `orders-consumer` hit 41,000 messages at 09:12; p99 processing 840ms, 3 pods.',
      'Scaling to 6 pods brought lag to 2,100 in 9 minutes; CPU per pod 71%.',
      'The root is the synchronous call to `pricing-svc` per message, 120ms each.',
      'I think we should move pricing lookups out of the hot path entirely and precompute them when catalogue entries change, rather than caching them lazily.',
      'Precomputing sounds attractive, but it couples the catalogue team to our release cadence and they already complain about coordination overhead with downstream consumers.',
      'Fair point. A middle ground would be an asynchronous enrichment stage that tolerates stale prices briefly while the main consumer keeps flowing.',
      'Stale prices worry finance though; refunds computed against outdated amounts caused an audit finding last year, so any staleness window must be explicit and bounded.',
      'Then we document the staleness bound in the contract and let finance sign off, while reconciliation jobs flag mismatches nightly for manual review.',
      'Reconciliation adds operational burden for the support rotation; perhaps instead the enrichment stage should reject messages whose price snapshot exceeds the agreed age.',
      'Rejecting means retries and poison queues, which we tried before and abandoned because dead letters piled up unnoticed during holidays.',
      'True, so alerting on dead-letter growth becomes mandatory, owned by our team, with a runbook describing replay procedures clearly.',
    ];
    expect(replay(turns).at).toBeNull();
  });
});

describe('detector state', () => {
  it('reset() forgets the evidence: a resumed room gets a fresh window, a continued loop alarms again', () => {
    const d = createLoopDetector();
    const thanks = ['Thanks!', 'Thank you too!', 'Cheers, thanks!', 'Much appreciated!', 'Thanks again!', 'You too, thanks!'];
    const first = replay([...productive(4), ...thanks, ...thanks], d);
    expect(first.at).not.toBeNull();
    d.reset();
    expect(d.observe(0, 'Thanks, one more time!', 'OVER')).toBeNull();
    const again = replay([...thanks, ...thanks], d);
    expect(again.at).not.toBeNull();
  });

  it('the reason is plain words and never quotes the messages', () => {
    const canary = 'zebracorn';
    const loop = Array.from({ length: 12 }, (_, i) => `${pick(['Thanks', 'Thank you', 'Cheers'], i)} ${canary}, ${pick(['great work!', 'you too!', 'appreciated!'], i, 1)}`);
    const alarm = expectCaught([...productive(4), ...loop], 4);
    expect(alarm.reason).toMatch(/^the last \d+ messages .* added no new information$/);
    expect(alarm.reason).not.toContain(canary);
  });

  it('repeated 100 KB pastes are judged (sampled, no crash) and caught as a loop', () => {
    const log = Array.from({ length: 2800 }, (_, i) => `2024-07-01T10:${String(i % 60).padStart(2, '0')} worker-${i % 17} job ${i} ok`).join('\n');
    expect(log.length).toBeGreaterThan(100_000);
    const turns = [...productive(4), ...Array.from({ length: 10 }, (_, i) => (i % 2 ? 'Same output again?' : log))];
    expectCaught(turns, 4);
  });

  it('a detector rebuilt from its JSON snapshot mid-conversation raises the alarm on the same turn, and the snapshot holds no text', () => {
    const canary = 'zebracorn';
    const turns = [...productive(4), ...Array.from({ length: 12 }, (_, i) => `${pick(['Thanks', 'Thank you', 'Cheers'], i)} ${canary}, ${pick(['great work!', 'you too!', 'appreciated!'], i, 1)}`)];
    const straight = replay(turns).at;
    let d = createLoopDetector();
    let at: number | null = null;
    for (let i = 0; i < turns.length && at === null; i++) {
      const json = JSON.stringify(d.snapshot());
      expect(json).not.toContain(canary);
      d = createLoopDetector({}, JSON.parse(json));
      if (d.observe((i % 2) as 0 | 1, turns[i], 'OVER')) at = i;
    }
    expect(straight).not.toBeNull();
    expect(at).toBe(straight);
  });

  it('one side alone never raises the alarm (the other has not answered)', () => {
    const d = createLoopDetector();
    const solo = replay(Array.from({ length: 12 }, () => ({ from: 0 as const, text: 'Any update?' })), d);
    expect(solo.at).toBeNull();
  });
});
