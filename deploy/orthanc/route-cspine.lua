-- Orthanc routing rule for cspine (demo PACS).
--
-- Forwards cervical-spine radiographs (CR and DX) that a modality sends to
-- Orthanc by DICOM to the cspine node, which measures the lateral views and
-- sends its SR and Secondary Capture back into the same study. Not routed:
-- instances cspine itself sends (its reports), instances imported by other
-- means (REST, which the node's scheduled pull finds instead), and other
-- modalities and body parts. The modality named "cspine" is declared in
-- Orthanc's DicomModalities.

local CSPINE_AET = os.getenv('CSPINE_AET') or 'CSPINE'

local cervical = { [''] = true, CSPINE = true, NECK = true }

function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin == nil or origin['RequestOrigin'] ~= 'DicomProtocol' then
    return
  end
  if origin['RemoteAet'] == CSPINE_AET then
    return
  end
  local modality = tags['Modality'] or ''
  if modality ~= 'CR' and modality ~= 'DX' then
    return
  end
  local body = string.upper(tags['BodyPartExamined'] or '')
  if not cervical[body] then
    return
  end
  SendToModality(instanceId, 'cspine')
end
