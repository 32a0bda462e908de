import { LabIcon } from '@jupyterlab/ui-components';

/** Three workers started together: the Jobs panel and the "run as job" button. */
export const jobsIcon = new LabIcon({
  name: 'lavahub:jobs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="4" width="6" height="16" rx="1.5"/>' +
    '<rect x="9" y="4" width="6" height="16" rx="1.5"/>' +
    '<rect x="16" y="4" width="6" height="16" rx="1.5"/>' +
    '</g></svg>'
});
