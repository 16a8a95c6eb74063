-- List a dataset tree in one pass: the root, every file system below it and all their snapshots.
-- Run with lzc_channel_program_nosync (read-only, open context).
--
-- argv.root    the file system (or snapshot) to start from
-- argv.prefix  only user properties whose name starts with this are returned
--
-- Returns {exists = false} when the root does not exist, else {exists = true, datasets = {record, ...}}
-- where a record is {name, type, creation, createtxg, used, referenced, [origin], [mountpoint],
-- [canmount], user = {property = value}}. 'mounted' is not available to channel programs.
-- User properties are reported only where they are set locally (their source is the dataset itself),
-- not where they are inherited: a snapshot inherits its file system's user properties.

local argv = (...)["argv"]
local root = argv["root"]
local prefix = argv["prefix"]

local NATIVE = {"type", "creation", "createtxg", "used", "referenced", "origin", "mountpoint", "canmount"}

if not zfs.exists(root) then
    return {exists = false}
end

local datasets = {}

local function describe(name)
    local record = {name = name}
    for _, prop in ipairs(NATIVE) do
        local value = zfs.get_prop(name, prop)
        if value ~= nil then
            record[prop] = value
        end
    end
    local user = {}
    for prop, value, source in zfs.list.user_properties(name) do
        if string.sub(prop, 1, #prefix) == prefix and source == name then
            user[prop] = value
        end
    end
    record["user"] = user
    return record
end

local function walk(filesystem)
    local record = describe(filesystem)
    if record["type"] == "volume" then
        return
    end
    datasets[#datasets + 1] = record
    for snapshot in zfs.list.snapshots(filesystem) do
        datasets[#datasets + 1] = describe(snapshot)
    end
    for child in zfs.list.children(filesystem) do
        walk(child)
    end
end

if string.find(root, "@", 1, true) then
    datasets[1] = describe(root)
else
    walk(root)
end
return {exists = true, datasets = datasets}
