// End-to-end encryption: keys, encrypted one-to-one messages through the real
// server, what the server stores, device changes, and the client crypto core
// (ratchet, sender keys, media, safety numbers).
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  E2eeDevice,
  MAX_SKIP,
  SenderKeys,
  decodeContent,
  decryptMedia,
  encodeContent,
  encryptMedia,
  safetyNumber,
  type Ciphertext,
  type PublicBundle,
} from "../src/client/e2ee";
import type { MessageFrame } from "../src/protocol";
import { Phone, bundleOf, codeOf, dumpR2, dumpStorage, flipByte, stub } from "./e2ee-harness";
import { call, sleep, token, uid } from "./helpers";
import { withDeadline } from "../src/objects/UserObject";

describe("end-to-end encrypted one-to-one chat", () => {
  it("two users and their second devices exchange encrypted messages both ways, offline and out of order, and no plaintext is stored", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const aPhone = await Phone.setup(alice, "phone");
    const aLaptop = await Phone.setup(alice, "laptop");
    const bPhone = await Phone.setup(bob, "phone");
    const bLaptop = await Phone.setup(bob, "laptop");
    const secrets = ["hello bob, the code is 7391", "hi alice, got it", "offline one", "offline two", "offline three", "welcome back"];

    // Alice's phone -> Bob's two devices and Alice's laptop.
    await aPhone.send(bob, "m1", { text: secrets[0] });
    const atBobPhone = await bPhone.nextMessage("m1");
    expect(atBobPhone.text).toBeUndefined();
    expect(atBobPhone.e2ee).toMatchObject({ v: 1, sender: "phone", type: "prekey" });
    expect(JSON.stringify(atBobPhone)).not.toContain("laptop"); // only its own ciphertext
    expect(bPhone.open(atBobPhone).text).toBe(secrets[0]);
    expect(await bLaptop.receiveText("m1")).toBe(secrets[0]);
    expect(await aLaptop.receiveText("m1")).toBe(secrets[0]); // the sender's other device

    // Bob's laptop answers; everyone else reads it.
    await bLaptop.send(alice, "r1", { text: secrets[1] });
    expect(await aPhone.receiveText("r1")).toBe(secrets[1]);
    expect(await aLaptop.receiveText("r1")).toBe(secrets[1]);
    expect(await bPhone.receiveText("r1")).toBe(secrets[1]);

    // Bob's laptop goes offline; three messages wait; its object is evicted meanwhile.
    bLaptop.sock!.ackAll();
    await sleep(50);
    bLaptop.disconnect();
    for (let i = 0; i < 3; i++) await aPhone.send(bob, `off${i}`, { text: secrets[2 + i] });
    await evictDurableObject(stub(bob));
    bLaptop.reload(); // the app restarted too: state comes back from its store
    const sock = await bLaptop.connect();
    const replayed: MessageFrame[] = sock.all("message").filter((m) => m.id.startsWith("off"));
    expect(replayed.map((m) => m.id)).toEqual(["off0", "off1", "off2"]);
    // Decrypted out of order: the ratchet keeps the skipped keys.
    expect(bLaptop.open(replayed[2]!).text).toBe(secrets[4]);
    expect(bLaptop.open(replayed[0]!).text).toBe(secrets[2]);
    expect(bLaptop.open(replayed[1]!).text).toBe(secrets[3]);
    for (let i = 0; i < 3; i++) expect(await bPhone.receiveText(`off${i}`)).toBe(secrets[2 + i]);

    await bLaptop.send(alice, "r2", { text: secrets[5] });
    expect(await aPhone.receiveText("r2")).toBe(secrets[5]);
    expect(await aLaptop.receiveText("r2")).toBe(secrets[5]);

    // The server holds public keys and ciphertext only: no plaintext anywhere.
    const stored = (await dumpStorage(alice)) + (await dumpStorage(bob));
    expect(stored).toContain("recipients"); // the dump did see the stored messages
    for (const s of secrets) expect(stored).not.toContain(s);
    // Fragments that cannot occur by chance: "7391" alone once matched the digits of a stored
    // timestamp or a run of base64 ciphertext.
    for (const s of ["is 7391", "got it", "offline", "welcome"]) expect(stored).not.toContain(s);
  });

  it("encrypted media round-trips through R2, its key travels inside the message, and a changed byte is detected", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice);
    const b = await Phone.setup(bob);
    const marker = "PLAINTEXT-IMAGE-MARKER-";
    const file = new TextEncoder().encode(marker.repeat(2000));
    const sealed = await encryptMedia(file);
    expect(sealed.ciphertext.length).toBe(file.length + 28);
    // The ciphertext goes up as application/octet-stream: no magic number to check.
    const up = await call("/v1/media", { method: "POST", token: a.token, body: sealed.ciphertext, headers: { "Content-Type": "application/octet-stream" } });
    expect(up.status, await up.clone().text()).toBe(201);
    const mediaId = ((await up.json()) as { id: string }).id;
    // It is no plaintext media: a message without e2ee cannot carry it.
    expect(await a.sendRaw({ type: "send", id: "plain-img", to: { user: bob }, media: { id: mediaId, type: "application/octet-stream", size: sealed.ciphertext.length } })).toMatchObject({ type: "error", code: "bad_media" });
    // Nor can anyone name someone else's upload as an attachment.
    const eve = await Phone.setup(uid("eve"));
    await expect(eve.send(bob, "steal", { text: "x" }, [mediaId])).rejects.toThrow(/bad_media/);
    // Bob may not fetch it before a message carrying it reached him.
    expect((await call(`/v1/media/${mediaId}/url`, { token: b.token })).status).toBe(403);
    await a.send(bob, "img", {
      media: { id: mediaId, type: "image/png", size: sealed.size, key: sealed.key, sha256: sealed.sha256, caption: "secret caption" },
    }, [mediaId]);
    const frame = await b.nextMessage("img");
    expect(frame.e2ee!.attachments).toEqual([mediaId]); // in the clear, for download grants and retention
    const content = b.open(frame);
    expect(content.media).toMatchObject({ id: mediaId, type: "image/png", size: file.length, sha256: sealed.sha256 });
    // The attachment granted Bob a download, like a plaintext message's media.
    const signed = await call(`/v1/media/${mediaId}/url`, { token: b.token });
    expect(signed.status).toBe(200);
    const { url } = (await signed.json()) as { url: string };
    const download = await call(url);
    expect(download.headers.get("Content-Disposition")).toBe("attachment");
    const fetched = new Uint8Array(await download.arrayBuffer());
    expect(await decryptMedia(fetched, content.media!)).toEqual(file);
    expect((await call(`/v1/media/${mediaId}/url`, { token: eve.token })).status).toBe(403);

    const changed = fetched.slice();
    changed[100]! ^= 0x80;
    await expect(decryptMedia(changed, content.media!)).rejects.toMatchObject({ code: "tampered" });
    const other = await encryptMedia(new TextEncoder().encode("another file"));
    await expect(decryptMedia(other.ciphertext, { key: other.key, sha256: sealed.sha256 })).rejects.toMatchObject({ code: "hash_mismatch" });

    const r2 = await dumpR2();
    expect(r2.length).toBeGreaterThan(file.length); // it did read the object
    expect(r2).not.toContain(marker);
    const stored = (await dumpStorage(alice)) + (await dumpStorage(bob));
    expect(stored).not.toContain("secret caption");
    expect(stored).not.toContain(sealed.key);
  });

  it("a device added later gets new messages but cannot read old ones", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice);
    const bPhone = await Phone.setup(bob, "phone");
    await a.send(bob, "old", { text: "before the tablet" });
    expect(await bPhone.receiveText("old")).toBe("before the tablet"); // not acked: the entry stays retained

    const tablet = await Phone.setup(bob, "tablet");
    const old = tablet.sock!.all("message").find((m) => m.id === "old");
    expect(old, "the retained entry is replayed to the new device").toBeDefined();
    expect(old!.e2ee).toEqual({ v: 1, sender: "phone" }); // no ciphertext for it
    expect(codeOf(() => tablet.open(old!))).toBe("not_for_device");

    // Alice's cached device list is stale: one devices_changed, then it goes through.
    const sent = await a.send(bob, "new", { text: "after the tablet" });
    expect(sent.attempts).toBe(2);
    expect(await tablet.receiveText("new")).toBe("after the tablet");
    expect(await bPhone.receiveText("new")).toBe("after the tablet");
  });

  it("a send with a stale device list gets devices_changed, stores nothing, and the retry with the same id stores one message", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice, "phone");
    const aLaptop = await Phone.setup(alice, "laptop");
    const b = await Phone.setup(bob, "phone");
    const bOld = await Phone.setup(bob, "old");
    await a.send(bob, "warmup", { text: "warm" });
    // Bob removes one device and adds another; Alice still believes the old list.
    const del = await call(`/v1/keys/old`, { method: "DELETE", token: bOld.token });
    expect(await del.json()).toEqual({ device: "old", removed: true });
    await Phone.setup(bob, "new");

    const addrs = await a.recipientsFor(bob);
    const stale = a.dev.encryptFor(addrs, encodeContent({ text: "retry me" }), await a.bundlesFor(addrs));
    const first = await a.sendRaw({ type: "send", id: "s1", to: { user: bob }, e2ee: stale });
    expect(first).toEqual({ type: "error", code: "devices_changed", missing: [`${bob}/new`], extra: [`${bob}/old`] });
    const afterRefusal = await runInDurableObject(stub(alice), (_o, st) => st.storage.sql.exec("SELECT id FROM sent_ids WHERE id = 's1'").toArray());
    expect(afterRefusal).toEqual([]);
    expect(a.sock!.all("error")).toEqual([]); // the socket is fine

    // The sender's own devices count too: a map without Alice's laptop is refused.
    const noLaptop = { ...stale, recipients: { ...stale.recipients } };
    delete noLaptop.recipients[`${alice}/laptop`];
    const second = await a.sendRaw({ type: "send", id: "s1", to: { user: bob }, e2ee: noLaptop });
    expect(second).toMatchObject({ code: "devices_changed", missing: expect.arrayContaining([`${alice}/laptop`, `${bob}/new`]) });

    // The client's retry path: same id, fixed map.
    a.known.delete(bob);
    const sent = await a.send(bob, "s1", { text: "retry me" });
    expect(sent.attempts).toBe(1);
    expect(await b.receiveText("s1")).toBe("retry me");
    expect(await aLaptop.receiveText("s1")).toBe("retry me");
    await sleep(200);
    const counts = await runInDurableObject(stub(bob), (_o, st) => ({
      received: st.storage.sql.exec("SELECT COUNT(*) AS n FROM received WHERE msg = ?", sent.msg).one().n,
      inbox: st.storage.sql.exec("SELECT COUNT(*) AS n FROM inbox WHERE msg = ?", sent.msg).one().n,
    }));
    expect(counts).toEqual({ received: 1, inbox: 1 });
    const outgoing = await runInDurableObject(stub(alice), (_o, st) => st.storage.sql.exec("SELECT COUNT(*) AS n FROM sent_ids WHERE id = 's1'").one().n);
    expect(outgoing).toBe(1);
    // A resend of the stored frame (socket dropped before `sent`) is answered with the same msg, stored once.
    expect(await a.sendRaw(sent.frame)).toMatchObject({ type: "sent", msg: sent.msg });
    await sleep(200);
    expect(b.sock!.all("message").filter((m) => m.id === "s1")).toHaveLength(0);
  });

  it("the client refuses a tampered ciphertext, a replayed one and one meant for another device", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice);
    const bPhone = await Phone.setup(bob, "phone");
    const bLaptop = await Phone.setup(bob, "laptop");
    await a.send(bob, "t1", { text: "first" });
    const first = await bPhone.nextMessage("t1");
    expect(bPhone.open(first).text).toBe("first");
    expect(codeOf(() => bPhone.open(first))).toBe("replayed");

    await a.send(bob, "t2", { text: "second" });
    const second = await bPhone.nextMessage("t2");
    const own = { type: second.e2ee!.type!, body: second.e2ee!.body! };
    expect(own.type).toBe("prekey"); // Bob has not answered yet: Alice keeps the X3DH header
    expect(codeOf(() => bPhone.dev.decrypt(`${alice}/phone`, flipByte(own, -40)))).toBe("tampered");
    expect(codeOf(() => bPhone.dev.decrypt(`${alice}/phone`, flipByte(own, 1)))).toBe("tampered"); // X3DH header changed
    expect(codeOf(() => bPhone.dev.decrypt(`${alice}/phone`, flipByte(own, 80)))).toBe("tampered"); // ratchet header changed
    expect(codeOf(() => bPhone.dev.decrypt(`${bob}/laptop`, own))).not.toBe("no error"); // relabelled sender
    const forLaptop = await bLaptop.nextMessage("t2");
    expect(codeOf(() => bPhone.dev.decrypt(`${alice}/phone`, { type: forLaptop.e2ee!.type!, body: forLaptop.e2ee!.body! }))).toBe("unknown_prekey");
    // None of that disturbed the session: the real message still opens, once.
    expect(bPhone.open(second).text).toBe("second");
    expect(codeOf(() => bPhone.open(second))).toBe("replayed");
    expect(bLaptop.open(forLaptop).text).toBe("second");
  });

  it("frames written one after another on a socket are handled in that order, though an e2ee send waits for the device lists", async () => {
    // Review of 2026-11-28: the plaintext send overtook the e2ee send before it,
    // which awaited an RPC to the peer's object while the next frame ran.
    const a = await Phone.setup(uid("alice"));
    const b = await Phone.setup(uid("bob"));
    const to = { user: b.user };
    const e2ee = { v: 1, sender: "phone", recipients: { [`${b.user}/phone`]: { type: "msg", body: "AAAA" } } };
    a.sock!.send({ type: "send", id: "o1", to, e2ee });
    a.sock!.send({ type: "send", id: "o2", to, e2ee });
    a.sock!.send({ type: "send", id: "o3", to, text: "third" });
    const sent = [await a.sock!.next("sent"), await a.sock!.next("sent"), await a.sock!.next("sent")];
    expect(sent.map((f) => f.id)).toEqual(["o1", "o2", "o3"]);
    const got = [await b.sock!.next("message"), await b.sock!.next("message"), await b.sock!.next("message")];
    expect(got.map((f) => f.id)).toEqual(["o1", "o2", "o3"]);
    expect(got.map((f) => f.seq)).toEqual([...got.map((f) => f.seq)].sort((x, y) => x - y));
  });

  it("the server refuses malformed encrypted sends with bad_frame and the socket stays usable", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice);
    await Phone.setup(bob);
    const c = { type: "msg", body: "AAAA" };
    const bad = [
      { type: "send", id: "b1", to: { user: bob }, text: "x", e2ee: { v: 1, sender: "phone", recipients: { [`${bob}/phone`]: c } } },
      { type: "send", id: "b2", to: { user: bob }, e2ee: { v: 1, sender: "phone", senderKeyCiphertext: "AAAA" } },
      { type: "send", id: "b3", to: { group: "g_x" }, e2ee: { v: 1, sender: "phone", recipients: { [`${bob}/phone`]: c } } },
      { type: "send", id: "b4", to: { user: bob }, e2ee: { v: 1, sender: "phone", recipients: { "no-slash": c } } },
      { type: "send", id: "b5", to: { user: bob }, e2ee: { v: 2, sender: "phone", recipients: {} } },
      { type: "send", id: "b6", to: { user: bob }, e2ee: { v: 1, sender: "phone", recipients: { [`${bob}/phone`]: { type: "msg", body: "not base64!" } } } },
    ];
    for (const f of bad) expect(await a.sendRaw(f), f.id).toMatchObject({ type: "error", code: "bad_frame" });
    // sender must be the socket's own device
    const spoof = await a.sendRaw({ type: "send", id: "b7", to: { user: bob }, e2ee: { v: 1, sender: "laptop", recipients: { [`${bob}/phone`]: c } } });
    expect(spoof).toMatchObject({ code: "bad_frame" });
    // ... in a group send too (review of 2026-11-28: only one-to-one sends were checked)
    const groupSpoof = { type: "send", id: "b9", to: { group: `g_${"2".repeat(32)}` }, e2ee: { v: 1, sender: "laptop", senderKeyCiphertext: "AAAA" } };
    expect(await a.sendRaw(groupSpoof)).toMatchObject({ type: "error", code: "bad_frame" });
    // An edit cannot bring attachments: they would be neither checked nor granted (review of 2026-11-28).
    const withMedia = { type: "edit", id: "b10", msg: "m_00000000000000000000000000", e2ee: { v: 1, sender: "phone", recipients: { [`${bob}/phone`]: c }, attachments: ["x1"] } };
    a.sock!.send(withMedia);
    expect(await a.sock!.next("error", (e) => e.ref === "b10")).toMatchObject({ code: "bad_frame" });
    // a user without keys cannot be written to encrypted
    const nobody = uid("nobody");
    expect(await a.sendRaw({ type: "send", id: "b8", to: { user: nobody }, e2ee: { v: 1, sender: "phone", recipients: {} } })).toMatchObject({
      code: "not_found",
    });
    expect((await a.send(bob, "ok", { text: "still fine" })).attempts).toBe(1);
  });
});

describe("key directory", () => {
  it("a one-time prekey is never handed out twice, even to 40 concurrent claims", async () => {
    const bob = uid("bob");
    const b = E2eeDevice.create(bob, "phone");
    const tb = await token(bob);
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: b.publishBundle(30) })).status).toBe(200);
    expect(await (await call("/v1/keys/phone/count", { token: tb })).json()).toEqual({ device: "phone", count: 30 });
    // 40 callers (one caller's claims are limited: see the next test).
    const callers = await Promise.all(Array.from({ length: 40 }, () => token(uid("carol"))));
    const bodies = await Promise.all(
      callers.map(async (tc) => (await (await call(`/v1/users/${bob}/keys`, { token: tc })).json()) as { devices: PublicBundle[] }),
    );
    const handed = bodies.flatMap((r) => r.devices.flatMap((d) => (d.oneTimePrekey ? [d.oneTimePrekey.id] : [])));
    expect(handed).toHaveLength(30);
    expect(new Set(handed).size).toBe(30);
    expect(bodies.every((r) => r.devices.length === 1)).toBe(true); // the rest got bundles without one
    expect(await (await call("/v1/keys/phone/count", { token: tb })).json()).toEqual({ device: "phone", count: 0 });
    // A refill tops up; more than the server holds is refused and changes nothing.
    expect(await (await call("/v1/keys/phone", { method: "PUT", token: tb, json: b.publishBundle(100) })).json()).toEqual({ device: "phone", count: 100 });
    const over = await call("/v1/keys/phone", { method: "PUT", token: tb, json: b.publishBundle(1) });
    expect(over.status).toBe(400);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe("bad_frame");
    expect(await (await call("/v1/keys/phone/count", { token: tb })).json()).toEqual({ device: "phone", count: 100 });
  });

  it("one caller cannot drain a user's one-time prekeys: its claims are limited, others' are not", async () => {
    // Review G of 2026-11-28: about 100 requests by anyone emptied every device of a user,
    // and all later first messages went without a one-time prekey.
    const bob = uid("bob");
    const tb = await token(bob);
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: E2eeDevice.create(bob, "phone").publishBundle(50) })).status).toBe(200);
    const mallory = await token(uid("mallory"));
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) statuses.push((await call(`/v1/users/${bob}/keys`, { token: mallory })).status);
    expect(statuses.slice(0, 10).every((s) => s === 200)).toBe(true);
    // One more may slip through if this took over 6 s (a busy machine): the refill.
    expect(statuses.slice(10).filter((s) => s === 429).length).toBeGreaterThanOrEqual(4);
    const handed = statuses.filter((s) => s === 200).length;
    const refused = await call(`/v1/users/${bob}/keys`, { token: mallory });
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    // Someone else still gets a bundle with a one-time prekey.
    const carol = await call(`/v1/users/${bob}/keys`, { token: await token(uid("carol")) });
    expect(((await carol.json()) as { devices: PublicBundle[] }).devices[0]!.oneTimePrekey).toBeDefined();
    expect(await (await call("/v1/keys/phone/count", { token: tb })).json()).toEqual({ device: "phone", count: 50 - handed - 1 });
  });

  it("an upload sent again never brings back a one-time prekey already handed out, nor a signed prekey already replaced", async () => {
    // Review G of 2026-11-28: a repeated PUT (an HTTP retry) re-added the claimed prekey, so
    // two callers got the same one; and a stale PUT rolled the signed prekey back.
    const bob = uid("bob");
    const tb = await token(bob);
    const tc = await token(uid("carol"));
    const b = E2eeDevice.create(bob, "phone");
    const body = b.publishBundle(2);
    const claim = async () => ((await (await call(`/v1/users/${bob}/keys`, { token: tc })).json()) as { devices: PublicBundle[] }).devices[0]!;
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: body })).status).toBe(200);
    const first = await claim();
    expect(await (await call("/v1/keys/phone", { method: "PUT", token: tb, json: body })).json()).toEqual({ device: "phone", count: 1 });
    const second = await claim();
    expect(second.oneTimePrekey!.id).not.toBe(first.oneTimePrekey!.id);
    expect((await claim()).oneTimePrekey).toBeUndefined();

    b.rotateSignedPrekey();
    const fresh = b.publishBundle(0);
    expect(fresh.signedPrekey.id).not.toBe(body.signedPrekey.id);
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: fresh })).status).toBe(200);
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: body })).status).toBe(200); // late, stale
    expect((await claim()).signedPrekey.id).toBe(fresh.signedPrekey.id);

    // A reinstalled device (new identity keys) uploads as a new one.
    const again = E2eeDevice.create(bob, "phone");
    expect(await (await call("/v1/keys/phone", { method: "PUT", token: tb, json: again.publishBundle(2) })).json()).toEqual({ device: "phone", count: 2 });
  });

  it("only the owner can publish or remove a device's keys", async () => {
    const bob = uid("bob");
    const mallory = uid("mallory");
    const b = await Phone.setup(bob);
    const before = (await (await call(`/v1/users/${bob}/devices`, { token: b.token })).json()) as { devices: unknown[] };
    const tm = await token(mallory);
    const evil = E2eeDevice.create(mallory, "phone").publishBundle(5);
    // Mallory's PUT lands in Mallory's own directory: the route is under the caller's identity.
    expect((await call("/v1/keys/phone", { method: "PUT", token: tm, json: evil })).status).toBe(200);
    expect((await call(`/v1/users/${bob}/keys`, { method: "PUT", token: tm, json: evil })).status).toBe(404);
    expect((await call("/v1/keys/phone", { method: "PUT", json: evil })).status).toBe(401);
    expect(await (await call("/v1/keys/phone", { method: "DELETE", token: tm })).json()).toEqual({ device: "phone", removed: true });
    const after = (await (await call(`/v1/users/${bob}/devices`, { token: tm })).json()) as { devices: Array<{ identityKey: string }> };
    expect(after.devices).toEqual(before.devices);
    expect(after.devices[0]!.identityKey).toBe(b.dev.publicIdentity.identityKey);
    const bundles = (await (await call(`/v1/users/${bob}/keys`, { token: tm })).json()) as { devices: PublicBundle[] };
    expect(bundles.devices[0]!.identityKey).toBe(b.dev.publicIdentity.identityKey);
  });

  it("a bad signed-prekey signature is bad_frame and stores nothing", async () => {
    const bob = uid("bob");
    const tb = await token(bob);
    const body = E2eeDevice.create(bob, "phone").publishBundle(3);
    const sig = Uint8Array.from(atob(body.signedPrekey.signature), (c) => c.charCodeAt(0));
    sig[5]! ^= 1;
    const forged = { ...body, signedPrekey: { ...body.signedPrekey, signature: btoa(String.fromCharCode(...sig)) } };
    const res = await call("/v1/keys/phone", { method: "PUT", token: tb, json: forged });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: "bad_frame", message: expect.stringContaining("signedPrekey.signature") } });
    // Signed by another device's key: also refused.
    const other = E2eeDevice.create(bob, "other").publishBundle(0);
    const swapped = { ...body, signingKey: other.signingKey };
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: swapped })).status).toBe(400);
    expect((await call("/v1/keys/phone/count", { token: tb })).status).toBe(404);
    expect(((await (await call(`/v1/users/${bob}/keys`, { token: tb })).json()) as { devices: unknown[] }).devices).toEqual([]);
    expect((await call("/v1/keys/phone", { method: "PUT", token: tb, json: body })).status).toBe(200);
  });
});

describe("e2ee crypto core", () => {
  /** Two devices with a session, set up without a server. */
  function pair() {
    const a = E2eeDevice.create("ann", "phone");
    const b = E2eeDevice.create("ben", "phone");
    const bundles = { "ben/phone": bundleOf(b.publishBundle(2), "phone") };
    const first = a.encryptFor(["ben/phone"], "start", bundles).recipients["ben/phone"]!;
    expect(new TextDecoder().decode(b.decrypt("ann/phone", first).plaintext)).toBe("start");
    return { a, b };
  }
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

  it("the double ratchet reads messages out of order across ratchet steps, and its state survives JSON", async () => {
    const { a, b } = pair();
    const burst = Array.from({ length: 5 }, (_, i) => a.encryptOne("ben/phone", encodeContent({ text: `a${i}` })));
    const reply = b.encryptOne("ann/phone", encodeContent({ text: "b0" }));
    expect(reply.type).toBe("msg");
    expect(decodeContent(a.decrypt("ben/phone", reply).plaintext).text).toBe("b0");
    const next = a.encryptOne("ben/phone", encodeContent({ text: "a-next" })); // a new ratchet step
    const b2 = E2eeDevice.fromJSON(JSON.parse(JSON.stringify(b.toJSON())));
    expect(decodeContent(b2.decrypt("ann/phone", next).plaintext).text).toBe("a-next");
    for (const i of [4, 0, 3, 1, 2]) expect(decodeContent(b2.decrypt("ann/phone", burst[i]!).plaintext).text).toBe(`a${i}`);
    for (const c of burst) expect(codeOf(() => b2.decrypt("ann/phone", c))).toBe("replayed");
    expect(codeOf(() => b2.decrypt("ann/phone", next))).toBe("replayed");
  });

  it("a message more than MAX_SKIP ahead is refused and changes nothing", () => {
    const { a, b } = pair();
    const reply = b.encryptOne("ann/phone", new Uint8Array([1]));
    a.decrypt("ben/phone", reply); // Ann now sends plain ratchet messages
    const skipped: Ciphertext[] = [];
    for (let i = 0; i <= MAX_SKIP + 1; i++) skipped.push(a.encryptOne("ben/phone", new Uint8Array([i & 0xff])));
    expect(codeOf(() => b.decrypt("ann/phone", skipped[MAX_SKIP + 1]!))).toBe("too_far_ahead");
    expect(b.decrypt("ann/phone", skipped[MAX_SKIP]!).plaintext).toEqual(new Uint8Array([MAX_SKIP & 0xff]));
    expect(b.decrypt("ann/phone", skipped[0]!).plaintext).toEqual(new Uint8Array([0]));
  });

  it("two devices that start sessions with each other at the same time still converge", () => {
    const a = E2eeDevice.create("ann", "phone");
    const b = E2eeDevice.create("ben", "phone");
    const ab = a.encryptOne("ben/phone", new Uint8Array([1]), bundleOf(b.publishBundle(1), "phone"));
    const ba = b.encryptOne("ann/phone", new Uint8Array([2]), bundleOf(a.publishBundle(1), "phone"));
    expect(b.decrypt("ann/phone", ab).plaintext).toEqual(new Uint8Array([1]));
    expect(a.decrypt("ben/phone", ba).plaintext).toEqual(new Uint8Array([2]));
    for (let i = 0; i < 3; i++) {
      expect(b.decrypt("ann/phone", a.encryptOne("ben/phone", new Uint8Array([10 + i]))).plaintext).toEqual(new Uint8Array([10 + i]));
      expect(a.decrypt("ben/phone", b.encryptOne("ann/phone", new Uint8Array([20 + i]))).plaintext).toEqual(new Uint8Array([20 + i]));
    }
  });

  it("group sender keys: every member reads, a removed member reads nothing after the rotation, a new member reads only what follows", () => {
    const group = "g_test";
    const devs = Object.fromEntries(["ann/phone", "ann/laptop", "ben/phone", "cat/phone", "dan/phone"].map((a) => [a, E2eeDevice.create(...(a.split("/") as [string, string]))]));
    const published = Object.fromEntries(Object.entries(devs).map(([a, d]) => [a, d.publishBundle(5)]));
    /** Pairwise hand-over of a distribution, as a one-to-one e2ee message would carry it. */
    const distribute = (from: string, to: string[]) => {
      const sender = devs[from]!;
      const prep = sender.senderKeys.prepare(group, to);
      if (!prep.distribution) return prep;
      const bundles = Object.fromEntries(prep.recipients.map((a) => [a, bundleOf(published[a]!, a.split("/")[1]!, 0)]));
      const env = sender.encryptFor(prep.recipients, encodeContent({ senderKey: prep.distribution }), bundles);
      for (const a of prep.recipients) {
        const content = decodeContent(devs[a]!.decrypt(from, env.recipients[a]!).plaintext);
        devs[a]!.senderKeys.process(from, content.senderKey!);
      }
      sender.senderKeys.markDistributed(group, prep.distribution.keyId, prep.recipients);
      return prep;
    };
    const members = ["ann/laptop", "ben/phone", "cat/phone"];
    expect(distribute("ann/phone", members).recipients).toEqual(members);
    const m1 = devs["ann/phone"]!.encryptGroup(group, "to all three");
    const m2 = devs["ann/phone"]!.encryptGroup(group, "second");
    for (const a of members) {
      // out of order, then a replay
      expect(text(devs[a]!.decryptGroup(group, "ann/phone", m2.senderKeyCiphertext))).toBe("second");
      expect(text(devs[a]!.decryptGroup(group, "ann/phone", m1.senderKeyCiphertext))).toBe("to all three");
      expect(codeOf(() => devs[a]!.decryptGroup(group, "ann/phone", m1.senderKeyCiphertext))).toBe("replayed");
    }
    // Another sender has its own key; nobody can read it before receiving it.
    const benMsg = devs["ben/phone"]!.senderKeys.prepare(group, ["ann/phone", "ann/laptop", "cat/phone"]);
    expect(codeOf(() => devs["cat/phone"]!.decryptGroup(group, "ben/phone", devs["ben/phone"]!.encryptGroup(group, "early").senderKeyCiphertext))).toBe("no_sender_key");
    expect(benMsg.recipients).toHaveLength(3);

    // A forged or changed group message is refused (signature), and so is one relabelled as another sender's.
    const m3 = devs["ann/phone"]!.encryptGroup(group, "signed").senderKeyCiphertext;
    const raw = Uint8Array.from(atob(m3), (c) => c.charCodeAt(0));
    raw[12]! ^= 1;
    const changed = btoa(String.fromCharCode(...raw));
    expect(codeOf(() => devs["ben/phone"]!.decryptGroup(group, "ann/phone", changed))).toBe("tampered");
    expect(codeOf(() => devs["ben/phone"]!.decryptGroup("g_other", "ann/phone", m3))).toBe("no_sender_key");
    expect(text(devs["ben/phone"]!.decryptGroup(group, "ann/phone", m3))).toBe("signed");

    // Cat is removed: Ann's next prepare rotates and hands the new key to the others only.
    const after = ["ann/laptop", "ben/phone"];
    const rot = distribute("ann/phone", after);
    expect(rot.rotated).toBe(true);
    expect(rot.recipients).toEqual(after);
    const secret = devs["ann/phone"]!.encryptGroup(group, "cat must not read this");
    expect(codeOf(() => devs["cat/phone"]!.decryptGroup(group, "ann/phone", secret.senderKeyCiphertext))).toBe("no_sender_key");
    for (const a of after) expect(text(devs[a]!.decryptGroup(group, "ann/phone", secret.senderKeyCiphertext))).toBe("cat must not read this");

    // Dan joins: he gets the current key, reads what follows, not what came before.
    const before = devs["ann/phone"]!.encryptGroup(group, "before dan");
    const join = distribute("ann/phone", [...after, "dan/phone"]);
    expect(join).toMatchObject({ rotated: false, recipients: ["dan/phone"] });
    const welcome = devs["ann/phone"]!.encryptGroup(group, "welcome dan");
    expect(text(devs["dan/phone"]!.decryptGroup(group, "ann/phone", welcome.senderKeyCiphertext))).toBe("welcome dan");
    expect(codeOf(() => devs["dan/phone"]!.decryptGroup(group, "ann/phone", before.senderKeyCiphertext))).toBe("replayed");
    expect(codeOf(() => devs["dan/phone"]!.decryptGroup(group, "ann/phone", secret.senderKeyCiphertext))).toBe("replayed");
    for (const a of after) expect(text(devs[a]!.decryptGroup(group, "ann/phone", welcome.senderKeyCiphertext))).toBe("welcome dan");

    // Sender-key state survives JSON like the rest.
    const ben2 = E2eeDevice.fromJSON(JSON.parse(JSON.stringify(devs["ben/phone"]!.toJSON())));
    const later = devs["ann/phone"]!.encryptGroup(group, "after reload");
    expect(text(ben2.decryptGroup(group, "ann/phone", later.senderKeyCiphertext))).toBe("after reload");
  });

  it("a group message's signature checked ahead natively (WebCrypto) counts for that ciphertext under that signing key only", async () => {
    const group = "g_ahead";
    const ann = new SenderKeys();
    const ben = new SenderKeys();
    const dist = ann.prepare(group, ["ben/phone"]).distribution!;
    ben.process("ann/phone", dist);
    const plain = (s: string) => new TextEncoder().encode(s);
    const flip = (c: string, at: number) => {
      const raw = Uint8Array.from(atob(c), (ch) => ch.charCodeAt(0));
      raw[at]! ^= 1;
      return btoa(String.fromCharCode(...raw));
    };
    // Good: checked natively (workerd has Ed25519 in WebCrypto), then opened once.
    const m1 = ann.encrypt(group, plain("one"));
    expect(await ben.checkAhead(group, "ann/phone", m1)).toBe(true);
    expect(text(ben.decrypt(group, "ann/phone", m1))).toBe("one");
    expect(codeOf(() => ben.decrypt(group, "ann/phone", m1))).toBe("replayed");
    // Changed after signing (a body byte, the signature): not checked ahead, refused by decrypt.
    const m2 = ann.encrypt(group, plain("two"));
    const changed = [flip(m2, 12), flip(m2, atob(m2).length - 1)];
    for (const c of changed) {
      expect(await ben.checkAhead(group, "ann/phone", c)).toBe(false);
      expect(codeOf(() => ben.decrypt(group, "ann/phone", c))).toBe("tampered");
    }
    // A ciphertext checked ahead does not vouch for another one.
    expect(await ben.checkAhead(group, "ann/phone", m2)).toBe(true);
    expect(codeOf(() => ben.decrypt(group, "ann/phone", changed[0]!))).toBe("tampered");
    // Nor for the same bytes under another signing key (the sender's key replaced meanwhile, same keyId).
    const m3 = ann.encrypt(group, plain("three"));
    expect(await ben.checkAhead(group, "ann/phone", m3)).toBe(true);
    ben.forget(group, "ann/phone");
    ben.process("ann/phone", { ...dist, signingKey: new SenderKeys().prepare(group, ["x/y"]).distribution!.signingKey });
    expect(codeOf(() => ben.decrypt(group, "ann/phone", m3))).toBe("tampered");
    // Nothing to check against: false, never a throw.
    expect(await ben.checkAhead(group, "cat/phone", m1)).toBe(false);
    expect(await ben.checkAhead(group, "ann/phone", "not base64 at all!")).toBe(false);
  });

  it("a safety number is the same on both sides, matches the server's key list, and changes when a device is added", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice);
    const b = await Phone.setup(bob);
    const mine = { user: alice, devices: [a.dev.publicIdentity] };
    const theirs = { user: bob, devices: [b.dev.publicIdentity] };
    const n = safetyNumber(mine, theirs);
    expect(n).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(safetyNumber(theirs, mine)).toBe(n);
    const listed = (await (await call(`/v1/users/${bob}/devices`, { token: a.token })).json()) as { devices: Array<{ identityKey: string; signingKey: string }> };
    expect(safetyNumber(mine, { user: bob, devices: listed.devices })).toBe(n);
    const tablet = await Phone.setup(bob, "tablet");
    expect(safetyNumber(mine, { user: bob, devices: [b.dev.publicIdentity, tablet.dev.publicIdentity] })).not.toBe(n);
    expect(safetyNumber(mine, { user: bob, devices: [E2eeDevice.create(bob, "phone").publicIdentity] })).not.toBe(n);
  });
});

describe("encrypted edits", () => {
  it("an encrypted edit is checked against the device lists and each device gets only its own new ciphertext", async () => {
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice, "phone");
    const aLaptop = await Phone.setup(alice, "laptop");
    const b = await Phone.setup(bob, "phone");
    const sent = await a.send(bob, "orig", { text: "helo" });
    expect(await b.receiveText("orig")).toBe("helo");
    expect(await aLaptop.receiveText("orig")).toBe("helo");
    const addrs = await a.recipientsFor(bob);
    const fixed = a.dev.encryptFor(addrs, encodeContent({ text: "hello" }), {});
    // Missing Alice's laptop: refused like a send, nothing applied.
    const partial = { ...fixed, recipients: { ...fixed.recipients } };
    delete partial.recipients[`${alice}/laptop`];
    a.sock!.send({ type: "edit", msg: sent.msg, e2ee: partial });
    const refused = await a.sock!.next("error");
    expect(refused).toMatchObject({ code: "devices_changed", missing: [`${alice}/laptop`] });
    a.sock!.send({ type: "edit", msg: sent.msg, e2ee: fixed });
    for (const p of [b, aLaptop]) {
      const ev = await p.sock!.next("event", (e) => e.event.kind === "edited");
      // Projected to this device: its own {type, body}, no map of the others.
      const e2ee = ev.event.e2ee as Record<string, unknown>;
      expect(e2ee).toMatchObject({ v: 1, sender: "phone" });
      expect(e2ee.recipients).toBeUndefined();
      expect(decodeContent(p.dev.decryptMessage(alice, e2ee as never).plaintext).text).toBe("hello");
    }
  });

  it("an encrypted message is edited only with ciphertext, and a device offline during the edit opens the original message, then the edit", async () => {
    // Review G of 2026-11-28: a plain `text` edit of an encrypted message was stored and
    // delivered in the clear; and an encrypted edit replaced the pending message's
    // ciphertext, so a device reached later lost the media key and replyTo it held.
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice, "phone");
    const b = await Phone.setup(bob, "phone");
    const tablet = await Phone.setup(bob, "tablet");
    const first = await a.send(bob, "first", { text: "first" });
    expect(await b.receiveText("first")).toBe("first");
    expect(await tablet.receiveText("first")).toBe("first");
    tablet.disconnect();
    await sleep(50);
    const sent = await a.send(bob, "reply", { text: "helo", replyTo: first.msg });
    expect(await b.receiveText("reply")).toBe("helo");

    const secret = `PLAIN-EDIT-${crypto.randomUUID()}`;
    a.sock!.send({ type: "edit", msg: sent.msg, text: secret });
    expect(await a.sock!.next("error", (e) => e.ref === sent.msg)).toMatchObject({ code: "bad_frame" });
    const fixed = a.dev.encryptFor(await a.recipientsFor(bob), encodeContent({ text: "hello" }), {});
    a.sock!.send({ type: "edit", msg: sent.msg, e2ee: fixed });
    const online = await b.sock!.next("event", (e) => e.event.kind === "edited");
    expect(decodeContent(b.dev.decryptMessage(alice, online.event.e2ee as never).plaintext).text).toBe("hello");

    await tablet.connect();
    const m = await tablet.nextMessage("reply");
    expect(m.editedAt).toBeDefined();
    expect(tablet.open(m)).toMatchObject({ text: "helo", replyTo: first.msg });
    const ev = await tablet.sock!.next("event", (e) => e.event.kind === "edited");
    expect(ev.seq).toBeGreaterThan(m.seq);
    expect(decodeContent(tablet.dev.decryptMessage(alice, ev.event.e2ee as never).plaintext).text).toBe("hello");
    expect(await dumpStorage(bob)).not.toContain(secret);
    expect(await dumpStorage(alice)).not.toContain(secret);

    // A plain message is not edited with ciphertext either.
    const plain = await a.sendRaw({ type: "send", id: "plain", to: { user: bob }, text: "in the clear" });
    if (plain.type !== "sent") throw new Error("plain send refused");
    a.sock!.send({ type: "edit", msg: plain.msg, e2ee: fixed });
    expect(await a.sock!.next("error", (e) => e.ref === plain.msg)).toMatchObject({ code: "bad_frame" });
  });

  it("an encrypted edit has the shape of a send to its chat: per-device ciphertexts one-to-one, one sender-key ciphertext in a group", async () => {
    // Review G of 2026-11-28: a group-style edit of a one-to-one message got devices_changed,
    // and a group edit carrying a per-device map was accepted and fanned out unchecked.
    const alice = uid("alice");
    const bob = uid("bob");
    const a = await Phone.setup(alice, "phone");
    await Phone.setup(bob, "phone");
    const one = await a.send(bob, "one", { text: "hi" });
    a.sock!.send({ type: "edit", msg: one.msg, e2ee: { v: 1, sender: "phone", senderKeyCiphertext: "QUJD" } });
    expect(await a.sock!.next("error", (e) => e.ref === one.msg)).toMatchObject({ code: "bad_frame", message: expect.stringContaining("e2ee.recipients") });
    const res = await call("/v1/groups", { method: "POST", token: a.token, json: { name: "g", members: [bob] } });
    const g = ((await res.json()) as { id: string }).id;
    const post = await a.sendRaw({ type: "send", id: "gp", to: { group: g }, e2ee: { v: 1, sender: "phone", senderKeyCiphertext: "QUJD" } });
    if (post.type !== "sent") throw new Error(`group post refused: ${post.code}`);
    a.sock!.send({ type: "edit", msg: post.msg, e2ee: { v: 1, sender: "phone", recipients: { [`${bob}/phone`]: { type: "msg", body: "QUJD" } } } });
    expect(await a.sock!.next("error", (e) => e.ref === post.msg)).toMatchObject({ code: "bad_frame", message: expect.stringContaining("senderKeyCiphertext") });
    a.sock!.send({ type: "edit", msg: post.msg, e2ee: { v: 1, sender: "phone", senderKeyCiphertext: "QUJE" } });
    expect((await a.sock!.next("event", (e) => e.event.kind === "edited")).event).toMatchObject({ msg: post.msg });
  });
});

describe("device list lookups", () => {
  // An encrypted send awaits the peer's device list, and the device's later
  // frames wait behind it: a peer object that never answers must not hold
  // them for good. The send is answered `internal` (the client retries) once
  // the deadline (10 s in the object) has passed.
  it("a lookup that never answers becomes `internal` at its deadline; one that answers, or fails, in time passes through", async () => {
    const never = new Promise<string[]>(() => {});
    const t0 = Date.now();
    await expect(withDeadline(never, 60)).rejects.toMatchObject({ code: "internal" });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(50);
    await expect(withDeadline(Promise.resolve(["phone"]), 60)).resolves.toEqual(["phone"]);
    await expect(withDeadline(Promise.reject(new Error("peer object failed")), 60)).rejects.toThrow("peer object failed");
  });
});
