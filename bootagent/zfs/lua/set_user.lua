-- Set and clear user properties of one dataset in one transaction group, checking everything first.
-- Run with lzc_channel_program (sync).
--
-- argv.name   the dataset (file system or snapshot)
-- argv.set    {property = value} to set
-- argv.clear  {property, ...} to clear (inherit)
--
-- Nothing is changed unless every check passes. Returns
--   {stage = "check" or "sync", failed = {property = errno}}  or  {stage = "done", failed = {}}

local argv = (...)["argv"]
local name = argv["name"]
local to_set = argv["set"]
local to_clear = argv["clear"]

if not zfs.exists(name) then
    return {stage = "check", failed = {[name] = ENOENT}}
end

local failed = {}
local nfailed = 0
for prop, value in pairs(to_set) do
    local err = zfs.check.set_prop(name, prop, value)
    if err ~= 0 then
        failed[prop] = err
        nfailed = nfailed + 1
    end
end
for _, prop in ipairs(to_clear) do
    local err = zfs.check.inherit(name, prop)
    if err ~= 0 then
        failed[prop] = err
        nfailed = nfailed + 1
    end
end
if nfailed > 0 then
    return {stage = "check", failed = failed}
end

for prop, value in pairs(to_set) do
    local err = zfs.sync.set_prop(name, prop, value)
    if err ~= 0 then
        failed[prop] = err
        return {stage = "sync", failed = failed}
    end
end
for _, prop in ipairs(to_clear) do
    local err = zfs.sync.inherit(name, prop)
    if err ~= 0 then
        failed[prop] = err
        return {stage = "sync", failed = failed}
    end
end
return {stage = "done", failed = {}}
