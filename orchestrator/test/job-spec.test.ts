import assert from 'node:assert/strict';
import { jobIdSchema, jobSettingsSchema, submitJobBody } from '../src/jobs/job-spec.js';

describe('job-spec', () => {
  it('applies defaults and takes form fields as strings', () => {
    assert.deepEqual(jobSettingsSchema.parse({ model: 'fraud' }), { model: 'fraud', chunk_size: 256, priority: 5 });
    assert.deepEqual(jobSettingsSchema.parse({ model: 'm', version: '2', chunk_size: '10', priority: '1', callback_url: 'https://h/x' }), {
      model: 'm',
      version: '2',
      chunk_size: 10,
      priority: 1,
      callback_url: 'https://h/x',
    });
  });

  it('refuses what is out of range, naming the field', () => {
    const issues = (v: unknown): string[] => {
      const r = submitJobBody.safeParse(v);
      return r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    };
    assert.deepEqual(issues({ model: 'm', rows: [{}] }), []);
    assert.deepEqual(issues({ model: 'm', rows: [] }), ['rows']);
    assert.deepEqual(issues({ model: 'bad name', rows: [{}] }), ['model']);
    assert.deepEqual(issues({ model: 'm', rows: [{}], chunk_size: 10_001 }), ['chunk_size']);
    assert.deepEqual(issues({ model: 'm', rows: [{}], chunk_size: 1.5 }), ['chunk_size']);
    assert.deepEqual(issues({ model: 'm', rows: [{}], priority: 0 }), ['priority']);
    assert.deepEqual(issues({ model: 'm', rows: [{}], callback_url: 'not a url' }), ['callback_url']);
    assert.deepEqual(issues({ model: 'm', rows: [{}], extra: 1 }), ['']);
    assert.ok(jobIdSchema.safeParse('6ea766b3-8dd7-4cb9-a254-1b9ab1fbbadc').success);
    assert.ok(!jobIdSchema.safeParse('../etc').success);
  });
});
