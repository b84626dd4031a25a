-- Heard: give Typst images their alt text.
-- Pandoc keeps an image's alt text as its description but its Typst writer drops
-- it, so each image is written as a raw Typst call that carries `alt:`.
local function quote(text)
  return '"' .. text:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

function Image(image)
  if not FORMAT:match('typst') then
    return nil
  end
  local alt = pandoc.utils.stringify(image.caption)
  local width = image.attributes.width or '84%'
  return pandoc.RawInline(
    'typst',
    '#image(' .. quote(image.src) .. ', width: ' .. width .. ', alt: ' .. quote(alt) .. ')'
  )
end
