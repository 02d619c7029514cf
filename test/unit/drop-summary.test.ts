// The drop summary (lib/log/drop-summary.ts) fed stats by hand: a report only when drops grew,
// at most one per interval, deltas by reason and by peer right, and the interval's setting.
import { describe, expect, it } from 'vitest';
import { DROP_SUMMARY_DEFAULT_MS, DropSummary, dropSummaryInterval } from '../../lib/log/drop-summary';
import { fakeDropStats } from '../helpers/fake-stats';

const MINUTE = 60_000;

describe('DropSummary', () => {
  it('says nothing while drops do not grow, whatever else moves', () => {
    const s = new DropSummary(MINUTE, fakeDropStats({ malformed: 4 }, { b: { malformed: 4 } }), 0);
    for (let t = 1; t <= 5; t++) expect(s.observe(fakeDropStats({ malformed: 4 }, { b: { malformed: 4 } }), t * MINUTE)).toBeNull();
  });

  it('reports the growth since the start by reason, only the reasons that grew, and the peers charged', () => {
    const s = new DropSummary(MINUTE, fakeDropStats({ malformed: 4, replay: 1 }, { b: { malformed: 4 }, c: { replay: 1 } }), 0);
    const report = s.observe(fakeDropStats({ malformed: 9, replay: 1, unknownPeer: 3 }, { b: { malformed: 9 }, c: { replay: 1 } }), MINUTE);
    expect(report).toEqual({ total: 8, drops: { malformed: 5, unknownPeer: 3 }, topPeers: [{ peer: 'b', drops: 5 }], withinSeconds: 60 });
  });

  it('reports at most once per interval: growth inside it waits, then comes in one report with the sum', () => {
    const s = new DropSummary(MINUTE, fakeDropStats({}), 0);
    expect(s.observe(fakeDropStats({ noRoute: 1 }), 10_000)).toMatchObject({ total: 1, drops: { noRoute: 1 } });
    // Within the minute after that report: nothing, however much grows.
    expect(s.observe(fakeDropStats({ noRoute: 3 }), 20_000)).toBeNull();
    expect(s.observe(fakeDropStats({ noRoute: 3, tooBig: 2 }), 69_999)).toBeNull();
    // A minute after it: one report with everything since the last one.
    expect(s.observe(fakeDropStats({ noRoute: 3, tooBig: 2 }), 70_000)).toMatchObject({ total: 4, drops: { noRoute: 2, tooBig: 2 } });
    expect(s.observe(fakeDropStats({ noRoute: 3, tooBig: 2 }), 200_000)).toBeNull();
  });

  it('says within how long the drops happened: since the counters were last seen unchanged', () => {
    const s = new DropSummary(MINUTE, fakeDropStats({}), 0);
    expect(s.observe(fakeDropStats({}), 60_000)).toBeNull();
    expect(s.observe(fakeDropStats({}), 120_000)).toBeNull();
    expect(s.observe(fakeDropStats({ malformed: 2 }), 180_000)?.withinSeconds).toBe(60);
  });

  it('names the top five peers, most drops first, ties by name, and counts a re-added peer from zero', () => {
    const before = { a: { replay: 10 }, b: {}, c: {}, d: {}, e: {}, f: {}, g: { replay: 50 } };
    const s = new DropSummary(MINUTE, fakeDropStats({ replay: 60 }, before), 0);
    // g was removed and added again: its counters started over at 2.
    const after = { a: { replay: 11 }, b: { replay: 4 }, c: { authFailed: 4 }, d: { replay: 3 }, e: { replay: 7 }, f: { replay: 1 }, g: { replay: 2 }, h: { replay: 9 } };
    const report = s.observe(fakeDropStats({ replay: 60 + 1 + 4 + 3 + 7 + 1 + 2 + 9, authFailed: 4 }, after), MINUTE)!;
    expect(report.topPeers).toEqual([
      { peer: 'h', drops: 9 },
      { peer: 'e', drops: 7 },
      { peer: 'b', drops: 4 },
      { peer: 'c', drops: 4 },
      { peer: 'd', drops: 3 },
    ]);
    expect(report.drops).toEqual({ replay: 27, authFailed: 4 });
    expect(report.total).toBe(31);
  });

  it('takes reasons it does not know (a newer data path) like any other', () => {
    const s = new DropSummary(MINUTE, fakeDropStats({}), 0);
    const stats = fakeDropStats({});
    (stats.totals.drops as Record<string, number>)['someNewReason'] = 2;
    expect(s.observe(stats, MINUTE)).toMatchObject({ total: 2, drops: { someNewReason: 2 } });
  });
});

describe('dropSummaryInterval', () => {
  it('is a minute unless OVERLAYFWD_DROP_SUMMARY_MS holds a whole number of ms of at least 100', () => {
    expect(dropSummaryInterval({})).toEqual({ ms: DROP_SUMMARY_DEFAULT_MS });
    expect(DROP_SUMMARY_DEFAULT_MS).toBe(60_000);
    expect(dropSummaryInterval({ OVERLAYFWD_DROP_SUMMARY_MS: '1500' })).toEqual({ ms: 1500 });
    for (const bad of ['99', '-5', '1.5', 'soon', '1e9x']) {
      expect(dropSummaryInterval({ OVERLAYFWD_DROP_SUMMARY_MS: bad })).toEqual({ ms: DROP_SUMMARY_DEFAULT_MS, invalid: bad });
    }
  });
});
