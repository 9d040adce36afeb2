// The filter functions strftime() and geoDistance() and the geoPoint field through the
// official SDK (pb.collection(..).getList({filter})): the same answers from Basalt and
// from PocketBase (SDK_TARGET=pocketbase).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, rejects } from "./helpers.mjs";

let s;
let pb;

before(async () => {
  s = await startServer();
  pb = s.pb;
  await pb.collections.create({
    name: "places",
    type: "base",
    listRule: "",
    viewRule: "",
    createRule: "",
    fields: [
      { name: "name", type: "text" },
      { name: "at", type: "date" },
      { name: "loc", type: "geoPoint" },
    ],
  });
  const places = s.client().collection("places");
  await places.create({ name: "sofia", at: "2024-03-05 10:20:30.123Z", loc: { lon: 23.32, lat: 42.69 } });
  await places.create({ name: "london", at: "2025-12-31 23:59:59.999Z", loc: { lon: -0.12, lat: 51.5 } });
  await places.create({ name: "nowhere" });
});

after(async () => {
  await s?.stop();
});

async function names(filter) {
  const page = await s.client().collection("places").getList(1, 50, { filter, sort: "name" });
  return page.items.map((r) => r.name);
}

test("geoPoint fields are stored and validated as PocketBase does", async () => {
  const places = s.client().collection("places");
  const blank = await places.getFirstListItem(`name = "nowhere"`);
  assert.deepEqual(blank.loc, { lon: 0, lat: 0 });
  const odd = await places.create({ name: "odd", loc: { lat: 1, extra: 2 } });
  assert.deepEqual(odd.loc, { lon: 0, lat: 1 });
  await pb.collection("places").delete(odd.id);
  const e = await rejects(places.create({ name: "bad", loc: { lon: 181, lat: 0 } }));
  assert.equal(e.status, 400);
  assert.equal(e.response.data.loc.code, "validation_invalid_longitude");
  const e2 = await rejects(places.create({ name: "bad", loc: { lon: 0, lat: -91 } }));
  assert.equal(e2.response.data.loc.code, "validation_invalid_latitude");
});

test("strftime() in filters", async () => {
  assert.deepEqual(await names(`strftime('%Y', at) = '2024'`), ["sofia"]);
  assert.deepEqual(await names(`strftime('%Y-%m-%d %H:%M', at) = '2024-03-05 10:20'`), ["sofia"]);
  assert.deepEqual(await names(`strftime('%Y', at, '+1 day') = '2026'`), ["london"]);
  assert.deepEqual(await names(`strftime('%m', at, 'start of year') = '01'`), ["london", "sofia"]);
  assert.deepEqual(await names(`strftime('%Y', at) = ''`), ["nowhere"]);
  assert.deepEqual(
    await names(pb.filter("strftime('%Y-%m', at) = {:month}", { month: "2025-12" })),
    ["london"],
  );
});

test("geoDistance() in filters", async () => {
  assert.deepEqual(await names(`geoDistance(loc.lon, loc.lat, 23.32, 42.69) < 1`), ["sofia"]);
  assert.deepEqual(
    await names(`geoDistance(loc.lon, loc.lat, -0.12, 51.5) > 2014 && geoDistance(loc.lon, loc.lat, -0.12, 51.5) < 2015`),
    ["sofia"],
  );
  assert.deepEqual(await names(`geoDistance(loc.lon, loc.lat, 0, 0) < 1`), ["nowhere"]);
  assert.deepEqual(await names(`loc.lat > 45`), ["london"]);
});

test("bad function calls are a 400", async () => {
  for (const filter of [
    `nope(at) = 1`,
    `strftime() = '2024'`,
    `geoDistance(loc.lon, loc.lat, 0) < 1`,
    `geoDistance(loc.lon, loc.lat, 'x', 0) < 1`,
  ]) {
    const e = await rejects(s.client().collection("places").getList(1, 10, { filter }));
    assert.equal(e.status, 400, filter);
  }
});
