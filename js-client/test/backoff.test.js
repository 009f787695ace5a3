import assert from "node:assert/strict";
import { test } from "node:test";

import { backoff } from "../wshub.js";

test("backoff scales random() by min * 2**attempt", () => {
  const random = () => 0.5;
  assert.equal(backoff(0, { min: 500, max: 20000, random }), 250);
  assert.equal(backoff(1, { min: 500, max: 20000, random }), 500);
  assert.equal(backoff(3, { min: 500, max: 20000, random }), 2000);
});

test("backoff is capped by max, even for huge attempt numbers", () => {
  const random = () => 1;
  assert.equal(backoff(6, { min: 500, max: 20000, random }), 20000);
  assert.equal(backoff(5000, { min: 500, max: 20000, random }), 20000);
});

test("backoff with full jitter stays within [0, min(max, min * 2**attempt)]", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(20000, 500 * 2 ** attempt);
    for (let i = 0; i < 200; i++) {
      const delay = backoff(attempt, { min: 500, max: 20000 });
      assert.ok(delay >= 0 && delay < cap, `attempt ${attempt}: ${delay} not in [0, ${cap})`);
    }
  }
});

test("backoff can return zero when random() does (full jitter has no floor)", () => {
  assert.equal(backoff(4, { min: 500, max: 20000, random: () => 0 }), 0);
});
