-- Runs an Argo CD health check against test cases, the way Argo CD calls it: the script is a
-- chunk that sees the object as the global `obj` and returns {status = ..., message = ...}.
--
--   lua health_test.lua HEALTH_LUA CASES_LUA
--
-- CASES_LUA returns a list of {name = ..., obj = {...}, status = ..., message = ...}
-- (hack/chart/health-test.sh writes it from docs/argocd/health_test.yaml).
-- Works with Lua 5.1 (Argo CD's gopher-lua is a 5.1) and 5.2+.
local script, cases_file = arg[1], arg[2]
if script == nil or cases_file == nil then
  io.stderr:write("usage: lua health_test.lua HEALTH_LUA CASES_LUA\n")
  os.exit(2)
end

-- Loads `path` as a chunk whose globals are `env` (setfenv in 5.1, load's env from 5.2).
local function load_with_env(path, env)
  if setfenv ~= nil then
    local chunk, err = loadfile(path)
    if chunk == nil then return nil, err end
    setfenv(chunk, env)
    return chunk
  end
  return loadfile(path, "t", env)
end

local cases = dofile(cases_file)
local passed, failed = 0, 0
for _, case in ipairs(cases) do
  -- A fresh global table per case, so no state leaks from one object to the next.
  local env = setmetatable({ obj = case.obj }, { __index = _G })
  local chunk, err = load_with_env(script, env)
  if chunk == nil then
    io.stderr:write("cannot load " .. script .. ": " .. tostring(err) .. "\n")
    os.exit(2)
  end
  local ok, result = pcall(chunk)
  local problem = nil
  if not ok then
    problem = "error: " .. tostring(result)
  elseif type(result) ~= "table" then
    problem = "returned " .. type(result) .. ", not a table"
  elseif result.status ~= case.status or result.message ~= case.message then
    problem = string.format("got %s %q, want %s %q", tostring(result.status),
      tostring(result.message), case.status, case.message)
  end
  if problem == nil then
    passed = passed + 1
    print(string.format("ok   %-40s %s: %s", case.name, case.status, case.message))
  else
    failed = failed + 1
    print(string.format("FAIL %-40s %s", case.name, problem))
  end
end
print(string.format("%d passed, %d failed", passed, failed))
if failed > 0 or passed == 0 then
  os.exit(1)
end
