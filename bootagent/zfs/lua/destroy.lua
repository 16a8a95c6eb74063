-- Destroy snapshots and file systems in one transaction group, checking every destroy first.
-- Run with lzc_channel_program (sync).
--
-- argv.snapshots    snapshot names
-- argv.filesystems  file system names, children before their parents
--
-- Nothing is changed unless every check passes. Returns
--   {stage = "check", failed = {name = errno}, blocked_by = {name = other}, destroyed = {}}
--   {stage = "sync", failed = {name = errno}, destroyed = {names destroyed before the failure}}
--   {stage = "done", failed = {}, destroyed = {names}}

local argv = (...)["argv"]
local snapshots = argv["snapshots"]
local filesystems = argv["filesystems"]

local wanted = {}
for _, name in ipairs(snapshots) do
    wanted[name] = true
end
for _, name in ipairs(filesystems) do
    wanted[name] = true
end

local failed = {}
local blocked_by = {}
local nfailed = 0

local function fail(name, err, other)
    if failed[name] == nil then
        failed[name] = err
        nfailed = nfailed + 1
        if other ~= nil then
            blocked_by[name] = other
        end
    end
end

-- Snapshots: zfs.check.destroy is exact (held -> EBUSY, cloned -> EEXIST).
for _, name in ipairs(snapshots) do
    if not zfs.exists(name) then
        fail(name, ENOENT)
    else
        local err = zfs.check.destroy(name)
        if err ~= 0 then
            fail(name, err)
        end
    end
end

-- File systems: zfs.check.destroy cannot know that their snapshots and children go first, so check that
-- every snapshot and child is being destroyed too; a file system with none left is checked exactly.
for _, name in ipairs(filesystems) do
    if not zfs.exists(name) then
        fail(name, ENOENT)
    else
        local pending = false
        for snapshot in zfs.list.snapshots(name) do
            if wanted[snapshot] then
                pending = true
            else
                fail(name, EBUSY, snapshot)
                break
            end
        end
        for child in zfs.list.children(name) do
            if wanted[child] then
                pending = true
            else
                fail(name, EEXIST, child)
                break
            end
        end
        if not pending and failed[name] == nil then
            local err = zfs.check.destroy(name)
            if err ~= 0 then
                fail(name, err)
            end
        end
    end
end

if nfailed > 0 then
    return {stage = "check", failed = failed, blocked_by = blocked_by, destroyed = {}}
end

local destroyed = {}
local function destroy(name)
    local err = zfs.sync.destroy(name)
    if err ~= 0 then
        fail(name, err)
        return false
    end
    destroyed[#destroyed + 1] = name
    return true
end

for _, name in ipairs(snapshots) do
    if not destroy(name) then
        return {stage = "sync", failed = failed, destroyed = destroyed}
    end
end
for _, name in ipairs(filesystems) do
    if not destroy(name) then
        return {stage = "sync", failed = failed, destroyed = destroyed}
    end
end
return {stage = "done", failed = {}, destroyed = destroyed}
