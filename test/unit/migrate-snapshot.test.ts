/** data.migration snapshot: the facts parser, the refusals and what is left to do, as pure functions. */
import { describe, expect, test } from 'vitest';
import {
  type BtrfsFacts,
  decidePath,
  decideSend,
  parseBtrfsFacts,
  refusal,
  snapshotNames,
} from '../../src/steps/snapshot.js';

const names = snapshotNames('/srv/app', 'R2');
const btrfs = (fields: Partial<BtrfsFacts> = {}): BtrfsFacts => ({
  probe: '/srv/app',
  fstype: 'btrfs',
  btrfs: true,
  kind: 'dir',
  subvolume: true,
  empty: false,
  snapshots: [],
  ...fields,
});
const m = (digest: string, meta = 'm') => ({ files: 1, bytes: 1, digest, meta });
const refuse = (source: BtrfsFacts, target: BtrfsFacts) =>
  refusal('/srv/app', { name: 'web-1', facts: source }, { name: 'web-2', facts: target }, names)?.message;

describe('snapshot names', () => {
  test('next to the path, by run; what is moved aside is next to it too', () => {
    expect(names).toEqual({
      dir: '/srv/.persona-snapshots',
      prefix: 'app@',
      name: 'app@R2',
      aside: '/srv/app.persona-previous-R2',
    });
  });
});

describe('snapshot names of a planned move', () => {
  test('two snapshots in one run, told apart by a suffix; the same directory, prefix and aside', () => {
    const pre = snapshotNames('/srv/app', 'R2', 'pre');
    const final = snapshotNames('/srv/app', 'R2', 'final');
    expect([pre.name, final.name]).toEqual(['app@R2.pre', 'app@R2.final']);
    expect({ ...pre, name: names.name }).toEqual(names);
  });
});

describe('decideSend: what a planned move still has to snapshot and send', () => {
  const ro = (name: string) => ({ name, readonly: true });
  const final = snapshotNames('/srv/app', 'R2', 'final');

  test('the final send is the difference from the precopy snapshot, preferred over a later one', () => {
    const source = btrfs({ snapshots: [ro('app@R2.pre'), ro('app@R9')] });
    const target = btrfs({ snapshots: [ro('app@R2.pre'), ro('app@R9')] });
    expect(decideSend({ source, target }, final, 'app@R2.pre')).toEqual({
      snapshot: true,
      send: { parent: 'app@R2.pre', replaceIncomplete: false },
    });
  });

  test('without the precopy snapshot on both hosts, the latest shared one; else in full', () => {
    const source = btrfs({ snapshots: [ro('app@R2.pre'), ro('app@R1')] });
    expect(decideSend({ source, target: btrfs({ snapshots: [ro('app@R1')] }) }, final, 'app@R2.pre')).toEqual(
      {
        snapshot: true,
        send: { parent: 'app@R1', replaceIncomplete: false },
      },
    );
    expect(decideSend({ source, target: btrfs() }, final, 'app@R2.pre')).toEqual({
      snapshot: true,
      send: { replaceIncomplete: false },
    });
  });

  test('taken and received: nothing; an unfinished receive is replaced', () => {
    const source = btrfs({ snapshots: [ro('app@R2.final')] });
    expect(decideSend({ source, target: btrfs({ snapshots: [ro('app@R2.final')] }) }, final)).toEqual({
      snapshot: false,
    });
    expect(
      decideSend(
        { source, target: btrfs({ snapshots: [{ name: 'app@R2.final', readonly: false }] }) },
        final,
      ),
    ).toEqual({ snapshot: false, send: { replaceIncomplete: true } });
  });
});

describe('parseBtrfsFacts', () => {
  test('NUL-separated records; snapshot names with colons, spaces and newlines stay whole', () => {
    const text = [
      'probe=/srv/app',
      'fstype=btrfs',
      'btrfs=yes',
      'kind=dir',
      'subvolume=yes',
      'snap=ro=true:app@R1',
      'snap=ro=false:app@R2',
      'snap=:odd: name\nx',
      'created=2026-11-27 20:23:05 +0000',
      '',
    ].join('\0');
    expect(parseBtrfsFacts(text)).toEqual({
      probe: '/srv/app',
      fstype: 'btrfs',
      btrfs: true,
      kind: 'dir',
      subvolume: true,
      empty: false,
      created: '2026-11-27 20:23:05 +0000',
      snapshots: [
        { name: 'app@R1', readonly: true },
        { name: 'app@R2', readonly: false },
        { name: 'odd: name\nx', readonly: false },
      ],
    });
  });

  test('a host without btrfs-progs says only where it looked', () => {
    expect(parseBtrfsFacts('probe=/srv\0fstype=ext2/ext3\0btrfs=no\0')).toMatchObject({
      probe: '/srv',
      fstype: 'ext2/ext3',
      btrfs: false,
      kind: 'absent',
    });
  });
});

describe('refusal: the host, the path and what it is', () => {
  test.each([
    [
      'source on ext4',
      btrfs({ fstype: 'ext2/ext3' }),
      btrfs(),
      'web-1:/srv/app is on ext2/ext3, not btrfs: data.migration snapshot needs each data path to be a btrfs subvolume',
    ],
    [
      'source a plain directory',
      btrfs({ subvolume: false }),
      btrfs(),
      'web-1:/srv/app is a plain directory on btrfs, not a btrfs subvolume: it cannot be snapshotted',
    ],
    [
      'target on tmpfs, path absent',
      btrfs(),
      btrfs({ fstype: 'tmpfs', probe: '/srv', kind: 'absent' }),
      'web-2:/srv/app is on tmpfs (its parent /srv is), not btrfs: the snapshot cannot be received there',
    ],
    [
      'no btrfs command on the target',
      btrfs(),
      btrfs({ btrfs: false }),
      'web-2: the btrfs command is not installed (data.migration snapshot needs btrfs-progs on both hosts)',
    ],
    [
      'the target on ext4 without the btrfs command: the filesystem is the reason',
      btrfs(),
      btrfs({ fstype: 'ext2/ext3', probe: '/srv', kind: 'absent', btrfs: false }),
      'web-2:/srv/app is on ext2/ext3 (its parent /srv is), not btrfs: the snapshot cannot be received there',
    ],
    [
      'the source on ext4 without the btrfs command: the filesystem is the reason',
      btrfs({ fstype: 'ext2/ext3', btrfs: false }),
      btrfs(),
      'web-1:/srv/app is on ext2/ext3, not btrfs: data.migration snapshot needs each data path to be a btrfs subvolume',
    ],
    ['target path a file', btrfs(), btrfs({ kind: 'other' }), 'web-2:/srv/app exists and is not a directory'],
    [
      "this run's snapshot name taken by something writable",
      btrfs({ snapshots: [{ name: 'app@R2', readonly: false }] }),
      btrfs(),
      'web-1:/srv/.persona-snapshots/app@R2 exists and is not a read-only snapshot: persona does not replace it',
    ],
    [
      'terminal controls in what the host said are not passed on',
      btrfs({ fstype: 'ext4\u001b]52;c;aGk=\u0007' }),
      btrfs(),
      'web-1:/srv/app is on ext4, not btrfs: data.migration snapshot needs each data path to be a btrfs subvolume',
    ],
  ])('%s', (_name, source, target, message) => {
    expect(refuse(source, target)).toBe(message);
  });

  test('both btrfs subvolumes: no refusal', () => {
    expect(refuse(btrfs(), btrfs({ kind: 'absent', probe: '/srv' }))).toBeUndefined();
  });
});

describe('decidePath: what is left to do', () => {
  const decide = (source: BtrfsFacts, target: BtrfsFacts, manifests: [string, string | undefined]) =>
    decidePath(
      { source, target },
      {
        source: m(manifests[0]),
        target: manifests[1] === undefined ? undefined : m(manifests[1]),
        targetName: 'web-2',
      },
      names,
    );

  test('the same manifests: converged, whatever snapshots are around', () => {
    expect(decide(btrfs(), btrfs(), ['a', 'a'])).toEqual({ converged: true });
  });

  test('nothing done yet: snapshot, send in full, install where nothing is', () => {
    expect(decide(btrfs(), btrfs({ kind: 'absent' }), ['a', undefined])).toEqual({
      converged: false,
      why: 'absent on web-2',
      snapshot: true,
      send: { replaceIncomplete: false },
      existing: 'absent',
    });
  });

  test('after a crash between send and install: only the install is left', () => {
    const own = { name: 'app@R2', readonly: true };
    const work = decide(btrfs({ snapshots: [own] }), btrfs({ kind: 'absent', snapshots: [own] }), [
      'a',
      undefined,
    ]);
    expect(work).toMatchObject({ converged: false, snapshot: false, existing: 'absent' });
    expect(work).not.toHaveProperty('send');
  });

  test('an unfinished receive (writable) is replaced; the newest parent both hold read-only is used', () => {
    const source = btrfs({
      snapshots: [
        { name: 'app@R0', readonly: true },
        { name: 'app@R1', readonly: true },
        { name: 'app@R2', readonly: true },
        { name: 'other@R9', readonly: true },
      ],
    });
    const target = btrfs({
      empty: true,
      snapshots: [
        { name: 'app@R0', readonly: true },
        { name: 'app@R1', readonly: true },
        { name: 'app@R2', readonly: false },
        { name: 'other@R9', readonly: true },
      ],
    });
    expect(decide(source, target, ['a', 'b'])).toEqual({
      converged: false,
      why: 'contents differ',
      snapshot: false,
      send: { parent: 'app@R1', replaceIncomplete: true },
      existing: 'empty',
    });
  });

  test('a parent only one host holds (or holds writable) is not a parent', () => {
    const source = btrfs({ snapshots: [{ name: 'app@R1', readonly: true }] });
    const target = btrfs({ snapshots: [{ name: 'app@R1', readonly: false }] });
    expect(decide(source, target, ['a', 'b'])).toMatchObject({
      send: { replaceIncomplete: false },
      existing: 'aside',
    });
    expect(decide(source, btrfs(), ['a', 'a'])).toEqual({ converged: true });
  });
});
