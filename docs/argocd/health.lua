-- Argo CD health check for modelserver.dev/ModelServer.
--
-- Reads what the operator reports, the kstatus way (the same conditions `kubectl wait` and Flux
-- read): status.observedGeneration, and the Ready, Reconciling and Stalled conditions.
--   Progressing  no status yet; the status (or a condition) describes an older generation than
--                the spec; Reconciling=True; or not Ready yet
--   Degraded     Stalled=True (bad spec, missing Secret, progress deadline, crash loop)
--   Healthy      Ready=True for the current generation
-- A status older than the spec is never Healthy: it says nothing about what was just applied.
--
-- Argo CD runs this with gopher-lua (Lua 5.1): plain Lua 5.1, no goto, no integer division.
-- It is tested with real Lua 5.1 and 5.4 interpreters against the objects in testdata/
-- (health_test.yaml; run `make chart-lint`).

local hs = {}

local function condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- "Reason: message", or whichever of them is there.
local function describe(c, fallback)
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  elseif message ~= "" then
    return message
  elseif reason ~= "" then
    return reason
  end
  return fallback
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. string.format("%d", generation)
  return hs
end

-- A condition the operator wrote for an older generation is as stale as an old status.
local function current(c)
  if c == nil then
    return nil
  end
  if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
    return nil
  end
  return c
end

local conditions = obj.status.conditions
local stalled = current(condition(conditions, "Stalled"))
local reconciling = current(condition(conditions, "Reconciling"))
local ready = current(condition(conditions, "Ready"))

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Not ready")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
