// The frontend's pure logic (src/model.ts, as built into lib/): `jlpm test`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  age,
  checkChoice,
  defaultsFor,
  describeError,
  endedSince,
  filterJobs,
  jobCell,
  limitsFor,
  LineSplitter,
  projectsOf
} from '../lib/model.js';

const OPTIONS = {
  frameworks: ['python', 'pytorch', 'ray'],
  driver_frameworks: ['ray'],
  max_workers: 8,
  elastic: false,
  gpus: true,
  default_timeout: 3600,
  max_timeout: 86400,
  projects: [
    { name: 'default', quota: { cpus: 8 } },
    { name: 'vision', quota: { gpus: 4 } }
  ],
  templates: [
    { slug: 'python', display_name: 'Python', cpus: 1, memory: '2Gi', gpus: 0,
      max_cpus: 4, max_memory: '8Gi', max_gpus: 0, projects: [] },
    { slug: 'pytorch', display_name: 'PyTorch', cpus: 2, memory: '4Gi', gpus: 1,
      max_cpus: 4, max_memory: '16Gi', max_gpus: 2, projects: ['vision'] }
  ]
};

const job = (id, state, project = 'default') => ({
  id, state, project, name: 'cell', user: 'alice', template: 'python', framework: 'python',
  workers: 2, resources: { cpus: 1, memory: '2Gi', gpus: 0 }, reason: null,
  created: '2026-12-03T10:00:00Z', started: null, finished: null, exit_code: null, timeout: 60
});

test('age says seconds, minutes, hours and days', () => {
  const at = Date.parse('2026-12-03T10:00:00Z');
  assert.equal(age('2026-12-03T09:59:48Z', at), '12s');
  assert.equal(age('2026-12-03T09:55:00Z', at), '5m');
  assert.equal(age('2026-12-03T07:00:00Z', at), '3h');
  assert.equal(age('2026-11-30T10:00:00Z', at), '3d');
  assert.equal(age('2026-12-03T10:00:05Z', at), '0s'); // a clock a little ahead
});

test('filters by state and project; projects listed once, sorted', () => {
  const jobs = [job('a', 'running'), job('b', 'failed', 'vision'), job('c', 'running', 'vision')];
  assert.deepEqual(filterJobs(jobs, { state: 'running', project: '' }).map(j => j.id), ['a', 'c']);
  assert.deepEqual(filterJobs(jobs, { state: '', project: 'vision' }).map(j => j.id), ['b', 'c']);
  assert.deepEqual(projectsOf(jobs), ['default', 'vision']);
});

test('jobs that ended since the last listing are news, those ended before the page loaded not', () => {
  const before = new Map([['a', 'running'], ['b', 'pending'], ['c', 'failed']]);
  const now = [job('a', 'succeeded'), job('b', 'pending'), job('c', 'failed'), job('d', 'failed')];
  // d started and ended between two listings (a fast cell): news too
  assert.deepEqual(endedSince(before, now).map(j => j.id), ['a', 'd']);
  assert.deepEqual(endedSince(null, now), [], 'the first listing: nothing is news');
});

test('GPU limits come from the template, the backend and the project quota', () => {
  assert.equal(limitsFor(OPTIONS, 'vision', 'pytorch', 1).maxGpus, 2);
  assert.equal(limitsFor(OPTIONS, 'vision', 'pytorch', 3).maxGpus, 1); // 4 GPUs of quota / 3
  assert.equal(limitsFor(OPTIONS, 'vision', 'pytorch', 5).maxGpus, 0);
  assert.equal(limitsFor(OPTIONS, 'default', 'python', 1).maxGpus, 0);
  assert.equal(limitsFor({ ...OPTIONS, gpus: false }, 'vision', 'pytorch', 1).maxGpus, 0);
  assert.deepEqual(limitsFor(OPTIONS, 'default', 'pytorch', 1).templates, ['python']);
});

test('defaults are the workspace project and template', () => {
  assert.deepEqual(defaultsFor(OPTIONS, { project: 'vision', template: 'pytorch' }), {
    workers: 2, gpus: 1, framework: 'python', project: 'vision', template: 'pytorch'
  });
  // a workspace template the project may not use gives way to the project's first
  assert.equal(defaultsFor(OPTIONS, { project: 'default', template: 'pytorch' }).template, 'python');
  assert.equal(defaultsFor(OPTIONS, { project: 'gone', template: null }).project, 'default');
});

test('a choice outside the limits is refused in words', () => {
  const limits = limitsFor(OPTIONS, 'vision', 'pytorch', 2);
  const ok = { workers: 2, gpus: 1, framework: 'pytorch', project: 'vision', template: 'pytorch' };
  assert.equal(checkChoice(ok, limits), null);
  assert.match(checkChoice({ ...ok, workers: 9 }, limits), /from 1 to 8/);
  assert.match(checkChoice({ ...ok, workers: 1.5 }, limits), /whole number/);
  assert.match(checkChoice({ ...ok, gpus: 3 }, limits), /from 0 to 2/);
  assert.match(checkChoice({ ...ok, framework: 'ray' }, limits), /workers must be 1/);
  assert.match(checkChoice({ ...ok, project: 'other' }, limits), /your projects/);
});

test('the job cell is the magic line and the cell unchanged; odd names are refused', () => {
  const choice = { workers: 2, gpus: 0, framework: 'python', project: 'vision', template: 'pytorch' };
  assert.equal(
    jobCell('print(1)\n', choice),
    '%%job --workers 2 --gpus 0 --framework python --project vision --template pytorch\nprint(1)\n'
  );
  assert.throws(() => jobCell('x', { ...choice, project: 'a b' }), /not a name/);
  assert.throws(() => jobCell('x', { ...choice, template: '--detach' }), /not a name/);
});

test('lines split across chunks come out whole', () => {
  const split = new LineSplitter();
  assert.deepEqual(split.push('[worker-0] a\n[wor'), ['[worker-0] a']);
  assert.deepEqual(split.push('ker-1] b\n\n'), ['[worker-1] b', '']);
  assert.deepEqual(split.push('tail'), []);
  assert.deepEqual(split.end(), ['tail']);
});

test('service errors read as one sentence', () => {
  assert.equal(describeError({ error: 'No job x.', hint: 'GET jobs lists your jobs' }, 404),
    'No job x. (GET jobs lists your jobs)');
  assert.equal(describeError({ error: 'Bad.' }, 400), 'Bad.');
  assert.equal(describeError({ message: 'Forbidden' }, 403), 'Forbidden');
  assert.equal(describeError('<html>', 502), 'The jobs service answered 502.');
});
