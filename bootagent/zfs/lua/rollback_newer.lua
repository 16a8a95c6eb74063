-- Destroy every snapshot of a file system newer than the target (by createtxg), then roll back to the
-- target, all in one transaction group. Run with lzc_channel_program (sync). The file system must not be
-- mounted (zfs.sync.rollback returns EBUSY for a mounted one).
--
-- argv.filesystem  the file system
-- argv.snapshot    the target snapshot (full name)
--
-- Nothing is changed unless every check passes. Returns
--   {stage = "check", failed = {name = errno}, destroyed = {}}
--   {stage = "sync", failed = {name = errno}, destroyed = {names destroyed before the failure}}
--   {stage = "done", failed = {}, destroyed = {names}}

local argv = (...)["argv"]
local filesystem = argv["filesystem"]
local target = argv["snapshot"]

if not zfs.exists(target) then
    return {stage = "check", failed = {[target] = ENOENT}, destroyed = {}}
end

local target_txg = zfs.get_prop(target, "createtxg")
local newer = {}
local txg = {}
for snapshot in zfs.list.snapshots(filesystem) do
    local created = zfs.get_prop(snapshot, "createtxg")
    if created > target_txg then
        newer[#newer + 1] = snapshot
        txg[snapshot] = created
    end
end
-- zfs.list.snapshots comes in no particular order: destroy (and report) them oldest first
table.sort(newer, function(a, b) return txg[a] < txg[b] end)

local failed = {}
local nfailed = 0
for _, snapshot in ipairs(newer) do
    local err = zfs.check.destroy(snapshot)
    if err ~= 0 then
        failed[snapshot] = err
        nfailed = nfailed + 1
    end
end
-- With newer snapshots present the rollback check would fail (not the latest); it is exact only here.
if #newer == 0 then
    local err = zfs.check.rollback(filesystem)
    if err ~= 0 then
        failed[filesystem] = err
        nfailed = nfailed + 1
    end
end
if nfailed > 0 then
    return {stage = "check", failed = failed, destroyed = {}}
end

local destroyed = {}
for _, snapshot in ipairs(newer) do
    local err = zfs.sync.destroy(snapshot)
    if err ~= 0 then
        failed[snapshot] = err
        return {stage = "sync", failed = failed, destroyed = destroyed}
    end
    destroyed[#destroyed + 1] = snapshot
end
local err = zfs.sync.rollback(filesystem)
if err ~= 0 then
    failed[filesystem] = err
    return {stage = "sync", failed = failed, destroyed = destroyed}
end
return {stage = "done", failed = {}, destroyed = destroyed}
