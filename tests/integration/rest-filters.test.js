// /rest/v1 horizontal filters with the real @supabase/supabase-js: every
// operator (eq neq gt gte lt lte like ilike match imatch is in cs cd ov sl sr
// nxl nxr adj fts plfts phfts wfts) and its not. form, or=(...) / and=(...)
// nested, on columns and JSON paths, values with reserved characters, and
// filters on each column type of the fixture. Expected behaviour is PostgREST's
// (wire reference 2.3); the expected rows are computed by hand from the seed in
// fixtures/rest.sql (alice owns items 1-8).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from './helpers.js';
import { setupRest, rest, qs, idsOf, ALICE_ITEMS } from './rest-support.js';

let ctx;
before(async () => {
  ctx = await setupRest();
});
after(async () => {
  await ctx?.server.stop();
});

const items = () => ctx.alice.from('fx_items').select('id').order('id');
const complement = (ids) => ALICE_ITEMS.filter((i) => !ids.includes(i));

// [column, operator, value, ids matching, ids matching not.<op> (NULLs match neither)]
const OPERATORS = [
  ['title', 'eq', 'alpha', [1], complement([1])],
  ['title', 'neq', 'alpha', complement([1]), [1]],
  ['qty', 'gt', '5', [6, 7, 8], [1, 2, 3, 5]],
  ['qty', 'gte', '5', [5, 6, 7, 8], [1, 2, 3]],
  ['qty', 'lt', '3', [1, 2], [3, 5, 6, 7, 8]],
  ['qty', 'lte', '3', [1, 2, 3], [5, 6, 7, 8]],
  ['title', 'like', '%eta%', [2, 6], complement([2, 6])],
  ['title', 'like', '*eta*', [2, 6], complement([2, 6])],
  ['title', 'ilike', '%ETA%', [2, 6], complement([2, 6])],
  ['title', 'match', '^[ab]', [1, 2], complement([1, 2])],
  ['title', 'imatch', '^[AB]', [1, 2], complement([1, 2])],
  ['qty', 'is', 'null', [4], complement([4])],
  ['done', 'is', 'true', [2, 5], complement([2, 5])],
  ['done', 'is', 'false', complement([2, 5]), [2, 5]],
  ['id', 'in', '(1,3,5)', [1, 3, 5], complement([1, 3, 5])],
  ['tags', 'cs', '{a}', [1, 5], complement([1, 5])],
  ['tags', 'cd', '{a,b,c}', [1, 2, 3, 4, 5], [6, 7, 8]],
  ['tags', 'ov', '{c,z}', [2, 3, 6], complement([2, 3, 6])],
  ['span', 'ov', '[4,6)', [1, 2], complement([1, 2])],
  ['span', 'sl', '[20,30)', [1, 2, 3, 5], [4, 6, 7, 8]],
  ['span', 'sr', '[20,30)', [4, 6, 7, 8], [1, 2, 3, 5]],
  ['span', 'nxr', '[1,10)', [1, 2, 5], [3, 4, 6, 7, 8]],
  ['span', 'nxl', '[50,100)', [6, 7, 8], [1, 2, 3, 4, 5]],
  ['span', 'adj', '[10,20)', [2], complement([2])],
  ['search', 'fts(english)', 'quick & fox', [1], complement([1])],
  ['search', 'fts', 'fox', [1, 6], complement([1, 6])],
  ['search', 'plfts(english)', 'lazy dog', [2], complement([2])],
  ['search', 'phfts(english)', 'brown fox', [1], complement([1])],
  ['search', 'wfts(english)', 'quick or rats', [1, 3, 4], complement([1, 3, 4])],
  ['meta', 'cs', '{"color":"red"}', [1, 5], [2, 3, 6, 7, 8]],
];

describe('every operator and its not. form', () => {
  for (const [col, op, val, yes, no] of OPERATORS) {
    it(`${col}=${op}.${val}`, async () => {
      assert.deepEqual(idsOf(await items().filter(col, op, val), `${op}`), yes);
    });
    it(`${col}=not.${op}.${val}`, async () => {
      assert.deepEqual(idsOf(await items().not(col, op, val), `not.${op}`), no);
    });
  }
});

describe('supabase-js filter methods', () => {
  it('eq/neq/gt/gte/lt/lte/like/ilike/is/in', async () => {
    assert.deepEqual(idsOf(await items().eq('title', 'beta')), [2]);
    assert.deepEqual(idsOf(await items().neq('done', false)), [2, 5]);
    assert.deepEqual(idsOf(await items().gt('qty', 6)), [7, 8]);
    assert.deepEqual(idsOf(await items().gte('qty', 6)), [6, 7, 8]);
    assert.deepEqual(idsOf(await items().lt('qty', 2)), [1]);
    assert.deepEqual(idsOf(await items().lte('qty', 2)), [1, 2]);
    assert.deepEqual(idsOf(await items().like('title', 'al%')), [1]);
    assert.deepEqual(idsOf(await items().ilike('title', "o'r%")), [8]);
    assert.deepEqual(idsOf(await items().is('qty', null)), [4]);
    assert.deepEqual(idsOf(await items().in('id', [8, 2, 2])), [2, 8]);
    assert.deepEqual(idsOf(await items().notIn('id', [1, 2, 3, 4])), [5, 6, 7, 8]);
  });

  it('contains/containedBy/overlaps on arrays and jsonb', async () => {
    assert.deepEqual(idsOf(await items().contains('tags', ['b'])), [1, 2]);
    assert.deepEqual(idsOf(await items().containedBy('tags', ['a', 'b'])), [1, 4, 5]);
    assert.deepEqual(idsOf(await items().overlaps('tags', ['a', 'q'])), [1, 5, 8]);
    assert.deepEqual(idsOf(await items().contains('meta', { size: { w: 1 } })), [1]);
    assert.deepEqual(idsOf(await items().containedBy('meta', { color: 'blue', n: 10, extra: true })), [2]);
    assert.deepEqual(idsOf(await items().contains('tags', ['x y'])), [6], 'array element with a space');
    assert.deepEqual(idsOf(await items().contains('tags', ['ü'])), [7], 'unicode array element');
  });

  it('range operators', async () => {
    assert.deepEqual(idsOf(await items().rangeLt('span', '[20,30)')), [1, 2, 3, 5]);
    assert.deepEqual(idsOf(await items().rangeGt('span', '[20,30)')), [4, 6, 7, 8]);
    assert.deepEqual(idsOf(await items().rangeLte('span', '[1,10)')), [1, 2, 5]);
    assert.deepEqual(idsOf(await items().rangeGte('span', '[50,100)')), [6, 7, 8]);
    assert.deepEqual(idsOf(await items().rangeAdjacent('span', '[10,20)')), [2]);
    assert.deepEqual(idsOf(await items().overlaps('span', '[4,6)')), [1, 2]);
  });

  it('textSearch: to_tsquery, plain, phrase, websearch, with and without a config', async () => {
    assert.deepEqual(idsOf(await items().textSearch('search', 'quick & fox', { config: 'english' })), [1]);
    assert.deepEqual(idsOf(await items().textSearch('search', 'fox')), [1, 6]);
    assert.deepEqual(idsOf(await items().textSearch('search', 'lazy dog', { type: 'plain', config: 'english' })), [2]);
    assert.deepEqual(idsOf(await items().textSearch('search', 'brown fox', { type: 'phrase', config: 'english' })), [1]);
    assert.deepEqual(idsOf(await items().textSearch('search', 'quick or rats', { type: 'websearch', config: 'english' })), [1, 3, 4]);
    assert.deepEqual(idsOf(await items().textSearch('search', '"lazy dog"', { type: 'websearch' })), [2]);
  });

  it('full-text search on a text column applies to_tsvector', async () => {
    assert.deepEqual(idsOf(await items().textSearch('title', 'alpha', { config: 'english' })), [1]);
  });

  it('isDistinct, is.unknown, likeAnyOf / ilikeAllOf', async () => {
    assert.deepEqual(idsOf(await items().isDistinct('qty', 5)), complement([5]), 'NULL is distinct from 5');
    assert.deepEqual(idsOf(await items().filter('done', 'is', 'unknown')), []);
    assert.deepEqual(idsOf(await items().likeAnyOf('title', ['al%', 'be%'])), [1, 2]);
    assert.deepEqual(idsOf(await items().ilikeAllOf('title', ['%A%', '%L%'])), [1, 4]);
    assert.deepEqual(idsOf(await items().likeAllOf('title', ['%a%', '%t%'])), [2, 3, 4, 6]);
    assert.deepEqual(idsOf(await items().ilikeAnyOf('title', ['%REILLY', 'ZETA%'])), [6, 8]);
  });

  it('.match({...}) ANDs equalities', async () => {
    assert.deepEqual(idsOf(await items().match({ project_id: 1, done: false })), [1, 3]);
  });
});

describe('or / and, nested, on columns and JSON paths', () => {
  it('or=(...)', async () => {
    assert.deepEqual(idsOf(await items().or('qty.eq.1,qty.eq.3')), [1, 3]);
  });

  it('and(...) nested in or, not.and nested in or', async () => {
    assert.deepEqual(idsOf(await items().or('id.eq.1,and(qty.gte.5,done.is.true)')), [1, 5]);
    assert.deepEqual(idsOf(await items().or('id.eq.2,not.and(qty.lt.7,id.lt.100)')), [2, 7, 8]);
    assert.deepEqual(idsOf(await items().or('and(id.gt.1,or(qty.eq.2,qty.eq.6)),id.eq.8')), [2, 6, 8]);
  });

  it('or is ANDed with the other filters', async () => {
    assert.deepEqual(idsOf(await items().eq('done', false).or('id.eq.1,id.eq.2')), [1]);
  });

  it('every operator works inside or=(...)', async () => {
    const quoted = await items().or(
      'title.like.al*,qty.is.null,tags.cs.{q},span.adj."[10,20)",search.fts(english).lazy & dog,title.in.(ünïcødé ☃)',
    );
    assert.deepEqual(idsOf(quoted), [1, 2, 4, 7, 8]);
    const nots = await items().or('title.not.like.*a*,id.not.in.(1,2,3,4,5,6,7)');
    assert.deepEqual(idsOf(nots), [5, 7, 8]);
  });

  it('top-level and=(...), not.or=(...), not.and=(...)', async () => {
    const get = async (params) => {
      const r = await rest(ctx.server, 'GET', `/fx_items?${qs([['select', 'id'], ['order', 'id'], ...params])}`, { token: ctx.aliceToken });
      assert.equal(r.status, 200, r.text);
      return r.json.map((x) => x.id);
    };
    assert.deepEqual(await get([['and', '(qty.gte.2,qty.lte.5)']]), [2, 3, 5]);
    assert.deepEqual(await get([['not.or', '(id.eq.1,id.eq.2)']]), [3, 4, 5, 6, 7, 8]);
    assert.deepEqual(await get([['not.and', '(id.gt.2,id.lt.8)']]), [1, 2, 8]);
    assert.deepEqual(await get([['and', '(id.gt.1,or(id.eq.2,id.eq.8))'], ['or', '(done.is.true,id.eq.8)']]), [2, 8]);
  });

  it('filters on JSON paths: ->> text, -> jsonb, nested, is null, in or', async () => {
    assert.deepEqual(idsOf(await items().eq('meta->>color', 'red')), [1, 5]);
    assert.deepEqual(idsOf(await items().gt('meta->n', 10)), [3, 5, 6]);
    assert.deepEqual(idsOf(await items().eq('meta->size->>w', '1')), [1]);
    assert.deepEqual(idsOf(await items().is('meta->>color', null)), [4]);
    assert.deepEqual(idsOf(await items().like('meta->>color', '*e*')), [1, 2, 3, 5]);
    assert.deepEqual(idsOf(await items().or('meta->>color.eq.red,meta->>color.eq.blue')), [1, 2, 5]);
    assert.deepEqual(idsOf(await items().eq('meta->>color', 'a,b(c)')), [6]);
    assert.deepEqual(idsOf(await items().or('meta->>color.eq."a,b(c)",meta->>color.eq.it\'s')), [6, 8]);
  });
});

describe('values with reserved characters', () => {
  for (const [id, title] of [
    [3, 'gamma, with comma'],
    [4, 'delta (paren)'],
    [5, 'eps "quoted"'],
    [6, 'zeta 100% + more'],
    [7, 'ünïcødé ☃'],
    [8, "O'Reilly"],
  ]) {
    it(`eq matches ${JSON.stringify(title)} exactly`, async () => {
      assert.deepEqual(idsOf(await items().eq('title', title)), [id]);
      assert.deepEqual(idsOf(await items().neq('title', title)), complement([id]));
    });
  }

  it('in.(...) with values holding commas and parentheses (quoted by postgrest-js)', async () => {
    assert.deepEqual(idsOf(await items().in('title', ['gamma, with comma', 'delta (paren)', 'zeta 100% + more'])), [3, 4, 6]);
    assert.deepEqual(idsOf(await items().in('title', ['ünïcødé ☃', "O'Reilly"])), [7, 8]);
  });

  it('double-quoted values inside or=(...), with \\" and \\\\ escapes', async () => {
    assert.deepEqual(idsOf(await items().or('title.eq."gamma, with comma",title.eq."delta (paren)"')), [3, 4]);
    assert.deepEqual(idsOf(await items().or('title.eq."eps \\"quoted\\"",id.eq.1')), [1, 5]);
    assert.deepEqual(idsOf(await items().or('title.eq."zeta 100% + more",title.eq."O\'Reilly"')), [6, 8]);
  });

  it('the value is everything after the operator, dots included', async () => {
    assert.deepEqual(idsOf(await items().eq('price', '1.50')), [1]);
    assert.deepEqual(idsOf(await items().eq('span', '[1,5)')), [1]);
  });

  it('a value that looks like SQL is only a value', async () => {
    assert.deepEqual(idsOf(await items().eq('title', "' or 1=1 --")), []);
    assert.deepEqual(idsOf(await items().eq('title', 'alpha; drop table fx_items')), []);
    assert.deepEqual(idsOf(await items().in('title', ["') or true --", 'alpha'])), [1]);
    assert.equal(await sql(ctx.server, 'select count(*) from public.fx_items'), '9');
  });
});

describe('filters on every column type', () => {
  it('bigint, numeric, bool, timestamptz, uuid, text[] equality', async () => {
    assert.deepEqual(idsOf(await items().eq('big', 10000000000)), [1]);
    assert.deepEqual(idsOf(await items().gt('price', 5)), [5, 7, 8]);
    assert.deepEqual(idsOf(await items().eq('done', true)), [2, 5]);
    assert.deepEqual(idsOf(await items().gte('due_at', '2024-05-01T00:00:00Z')), [5, 6, 7, 8]);
    assert.deepEqual(idsOf(await items().lt('due_at', '2024-02-01')), [1]);
    assert.deepEqual(idsOf(await items().gt('due_at', '2024-03-01T01:00:00+02:00')), [3, 5, 6, 7, 8], 'offsets are honoured');
    const ext = await sql(ctx.server, 'select ext_id from public.fx_items where id = 2');
    assert.deepEqual(idsOf(await items().eq('ext_id', ext)), [2]);
    assert.deepEqual(idsOf(await items().eq('tags', '{b,c}')), [2]);
    // fx_seed inserted every row in one transaction: one now() for all.
    const created = await sql(ctx.server, 'select created_at from public.fx_items where id = 1');
    assert.deepEqual(idsOf(await items().eq('created_at', created)), ALICE_ITEMS);
  });

  it('a filter on a column that is not selected', async () => {
    const res = await ctx.alice.from('fx_items').select('title').eq('id', 2);
    assert.deepEqual(res.data, [{ title: 'beta' }]);
  });

  it('a filter value of the wrong type is 400 22P02', async () => {
    const res = await items().eq('qty', 'abc');
    assert.equal(res.status, 400);
    assert.equal(res.error?.code, '22P02');
  });
});
